"""descend.io at its edges: every refusal read in full, the save's file-system steps
(temporary name, exclusive creation, clean-up after a failed write, stale
temporaries), bytes paths and the plan beside the state.

Each message is compared whole (``re.fullmatch``), so that a message that lost
its head or its tail, or changed case, fails here as a user reading it would
notice; each file-system step is checked by what is left on disk.
"""
import errno
import json
import os
import re
import stat
import zipfile

import numpy as np
import pytest

import descend as dn
from descend import io


def small_net(epochs=1):
    net = dn.Sequential([dn.Dense(4, activation="relu"), dn.Dense(3)], input_dim=2,
                        dtype="float64", seed=0, n_threads=1)
    net.compile("softmax_cross_entropy", dn.optimizers.SGD(0.1, momentum=0.9))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 2))
    net.fit(X, np.arange(12) % 3, epochs=epochs, batch_size=4, verbose=0)
    return net


@pytest.fixture
def saved(tmp_path):
    return small_net().save(tmp_path / "model.npz")     # the path written, a str


def entries(path):
    with np.load(path, allow_pickle=False) as f:
        return {key: f[key] for key in f.files}


def config_of(path):
    return json.loads(str(entries(path)["config"][()]))


def rewritten(path, config=None, **arrays):
    """The file at `path` rewritten with its config replaced (a dict, dumped to JSON)
    and entries replaced or added (a value None drops the entry)."""
    contents = entries(path)
    if config is not None:
        contents["config"] = np.array(json.dumps(config))
    for key, value in arrays.items():
        if value is None:
            contents.pop(key)
        else:
            contents[key] = value
    with open(path, "wb") as f:
        np.savez(f, **contents)
    return path


def load_message(path, error=ValueError):
    with pytest.raises(error) as info:
        dn.load(path)
    return str(info.value)


def assert_full(message, pattern):
    """`message` is exactly `pattern` (a regular expression, anchored at both ends)."""
    assert re.fullmatch(pattern, message), f"{message!r} is not {pattern!r}"


# ------------------------------------------------------------------ save's refusals
def test_save_refusals_read_in_full(tmp_path):
    path = tmp_path / "m.npz"
    with pytest.raises(ValueError) as info:
        dn.Sequential([dn.Dense(2)]).save(path)
    assert str(info.value) == ("cannot save a network that is not built: give input_dim "
                               "or fit it first")
    with pytest.raises(ValueError) as info:
        small_net().save(tmp_path)
    assert str(info.value) == (f"path {str(tmp_path)!r} is a directory; give a file name "
                               f"such as {os.path.join(str(tmp_path), 'model.npz')!r}")
    with pytest.raises(TypeError) as info:
        io.save("a string", path)
    assert str(info.value) == "model must be a descend Sequential, got str"
    with pytest.raises(TypeError) as info:
        small_net().save(3)
    assert str(info.value) == "path must be a non-empty str or os.PathLike path, got 3 (int)"
    assert os.listdir(tmp_path) == []


def test_a_callable_in_the_config_is_refused_with_the_whole_explanation(tmp_path):
    net = dn.Sequential([dn.Dense(3)], input_dim=2, seed=0)
    net.compile("softmax_cross_entropy", dn.optimizers.SGD(lambda epoch: 0.1))
    with pytest.raises(ValueError) as info:
        net.save(tmp_path / "m.npz")
    assert_full(str(info.value),
                r"cannot save this network: part of its configuration is not plain data "
                r"\(function <function .*<lambda> at 0x[0-9a-f]+>\); a LambdaSchedule, a "
                r"custom initializer or another Python callable cannot be stored in a "
                r"model file. For a learning rate, use a built-in schedule "
                r"\(descend.schedules\) or set it from a LearningRateScheduler callback; or "
                r"keep the arrays with state_dict\(\)")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("classes, message", [
    # the message shows the first ten labels, no more
    (np.array([1, "a"] * 6, dtype=object),
     "cannot save classes_ of mixed Python objects [1, 'a', 1, 'a', 1, 'a', 1, 'a', 1, 'a']: "
     "use numbers or strings as labels"),
    # a bool among ints is not an int label
    (np.array([0, True], dtype=object),
     "cannot save classes_ of mixed Python objects [0, True]: use numbers or strings as "
     "labels"),
    # fixed-width strings drop trailing NULs: the file held 'a' twice, which load refused
    (np.array(["a", "a\x00", "b"], dtype=object),
     "cannot save classes_ ['a', 'a\\x00', 'b']: numpy's fixed-width strings drop trailing "
     "NUL characters, so they would be saved as ['a', 'a', 'b']; use labels without them"),
    # (was a bare OverflowError: "Python int too large to convert to C long")
    (np.array([1, 2, 2**64], dtype=object),
     "cannot save classes_ holding the label 18446744073709551616, an int beyond the 64-bit "
     "range a model file holds labels in; use smaller ints or strings as labels"),
    (np.array([1 + 0j, 2 + 0j]), "cannot save classes_ of dtype complex128 and shape (2,)"),
    (np.array([[0], [1]]), "cannot save classes_ of dtype int64 and shape (2, 1)"),
    (np.array([["a", "b"]]), "cannot save classes_ of dtype <U1 and shape (1, 2)"),
    # an object array of the wrong shape is named by its shape, not as "mixed objects"
    (np.array([["a", "b"]], dtype=object), "cannot save classes_ of dtype object and shape "
     "(1, 2)"),
])
def test_classes_that_a_file_cannot_hold_are_refused_in_full(tmp_path, classes, message):
    net = small_net()
    net.classes_ = classes
    with pytest.raises(ValueError) as info:
        net.save(tmp_path / "m.npz")
    assert str(info.value) == message
    assert os.listdir(tmp_path) == []


def test_labels_ending_in_nul_are_refused_by_fit_not_after_it_by_load(tmp_path):
    # 'a' and 'a\x00' fitted as two classes; save wrote them as 'a' twice and
    # load refused the file ("classes must hold sorted distinct labels")
    net = small_net()
    weights = [w.copy() for w in net.get_weights()]
    X = np.random.default_rng(0).normal(size=(6, 2))
    labels = np.array(["a", "a\x00", "b"] * 2, dtype=object)
    message = ("y has the label 'a\\x00', which ends in a NUL character: numpy's fixed-width "
               "strings drop trailing NULs (it would be 'a' in classes_ and in a saved model); "
               "strip them or use other labels")
    for call in (lambda: net.fit(X, labels, verbose=0), lambda: net.partial_fit(X, labels)):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == message
    with pytest.raises(ValueError) as info:      # (np.asarray would drop the NUL here)
        net.partial_fit(X, np.array(["a", "b", "c"] * 2), classes=["a", "b", "c\x00"])
    assert str(info.value) == message.replace("y has", "classes has").replace(
        "'a\\x00'", "'c\\x00'").replace("be 'a'", "be 'c'")
    assert net.epochs_trained == 1
    assert all(np.array_equal(a, b) for a, b in zip(weights, net.get_weights()))


@pytest.mark.parametrize("classes", [np.array([2, 5, 7], dtype=np.uint8),
                                     np.array([0.5, 1.5, 2.5]), np.array([b"a", b"b", b"c"])])
def test_classes_of_every_stored_kind_come_back_with_their_dtype(tmp_path, classes):
    net = small_net()
    net.classes_ = classes
    net.save(tmp_path / "m.npz")
    loaded = dn.load(tmp_path / "m.npz").classes_
    assert loaded.dtype == classes.dtype
    np.testing.assert_array_equal(loaded, classes)


# ------------------------------------------------------------------ load's refusals
def test_a_file_that_is_not_a_zip_archive_is_refused_in_full(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"\x93NUMPY not a zip")
    assert load_message(path) == (f"{str(path)!r} is not a descend model file: not an .npz "
                                  "(zip) archive")


def test_an_empty_zip_archive_is_read_as_an_archive_without_a_config(tmp_path):
    # an archive with no member starts with the end-of-directory record PK\x05\x06
    path = tmp_path / "m.npz"
    zipfile.ZipFile(path, "w").close()
    assert path.read_bytes()[:4] == b"PK\x05\x06"
    assert load_message(path) == (f"{str(path)!r}: missing entry 'config'; the file is "
                                  "incomplete or not a descend model")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_is_refused_in_full(tmp_path):
    path = tmp_path / "pipe.npz"
    os.mkfifo(path)
    assert load_message(path) == (f"{str(path)!r} is not a regular file (a named pipe, "
                                  "device or socket); descend reads models from regular "
                                  "files only")


def test_members_that_are_not_one_npy_per_entry_are_refused_in_full(saved):
    with zipfile.ZipFile(saved, "a") as z:
        z.writestr("notes.txt", b"hello")
    assert load_message(saved) == (f"{str(saved)!r}: unexpected archive member 'notes.txt' "
                                   "(a descend model holds one .npy member per entry)")


def test_a_member_stored_twice_is_refused(saved):
    config = zipfile.ZipFile(saved).read("config.npy")
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(saved, "a") as z:
            z.writestr("config.npy", config)
    assert load_message(saved) == (f"{str(saved)!r}: unexpected archive member 'config.npy' "
                                   "(a descend model holds one .npy member per entry)")


def test_pickled_and_encrypted_members_are_refused_in_full(saved, tmp_path):
    path = rewritten(saved, extra=np.array([{"a": 1}], dtype=object))
    assert load_message(path) == (f"{str(path)!r}: entry 'extra' holds pickled Python "
                                  "objects; descend never unpickles (allow_pickle=False)")
    other = tmp_path / "encrypted.npz"
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(other, "w") as z:
        for info in source.infolist():
            z.writestr(info, source.read(info))
    data = bytearray(other.read_bytes())
    # set bit 0 of the general-purpose flags in the first member's local and central
    # headers
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        data[start + offset] |= 1
    other.write_bytes(bytes(data))
    first = zipfile.ZipFile(saved).infolist()[0].filename[:-len(".npy")]
    assert load_message(other) == f"{str(other)!r}: entry {first!r} is encrypted"


def test_a_member_whose_size_disagrees_with_its_header_is_refused_with_both_sizes(saved):
    # a header that says 3 float64 (24 bytes) over 2 of them (16 bytes)
    with zipfile.ZipFile(saved) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    npy = bytearray(members["parameters/layers.0.bias.npy"])
    header_end = npy.index(b"\n") + 1
    header = npy[:header_end].decode("latin1").replace("(4,)", "(3,)")
    members["parameters/layers.0.bias.npy"] = header.encode("latin1") + npy[header_end:][:16]
    with zipfile.ZipFile(saved, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    assert load_message(saved) == (f"{str(saved)!r}: entry 'parameters/layers.0.bias' "
                                   "declares shape (3,) of float64 (24 bytes) but the "
                                   "archive stores 16 bytes for it")


@pytest.mark.parametrize("config, message", [
    (np.array(["{}"]), "entry 'config' must be a 0-d unicode array, got dtype <U2 and "
                       "shape (1,)"),
    (np.array(b"{}"), "entry 'config' must be a 0-d unicode array, got dtype |S2 and "
                      "shape ()"),
    (np.array("[]"), "entry 'config' must be a JSON object"),
    (np.array("{}"), "the config has no 'format_version'; not a descend model file"),
    (np.array(json.dumps({"format_version": 3, "descend_version": "9.9"})),
     "unknown format version 3: this descend reads format versions [1, 2] (the file was "
     "written by descend 9.9)"),
    (np.array(json.dumps({"format_version": 0})),
     "unknown format version 0: this descend reads format versions [1, 2] (the file was "
     "written by descend ?)"),
    (np.array(json.dumps({"format_version": 2, "format": "keras"})),
     "the config's format is 'keras', expected 'descend.Sequential'"),
])
def test_configs_that_are_not_descend_configs_are_refused_in_full(saved, config, message):
    contents = entries(saved)
    contents["config"] = config
    with open(saved, "wb") as f:
        np.savez(f, **contents)
    assert load_message(saved) == f"{str(saved)!r}: {message}"


@pytest.mark.parametrize("drop", ["model", "compile", "state"])
def test_a_format_2_config_names_the_key_it_lacks(saved, drop):
    config = config_of(saved)
    del config[drop]
    assert load_message(rewritten(saved, config)) == (f"{str(saved)!r}: the config has no "
                                                      f"{drop!r} entry")


@pytest.mark.parametrize("model", [[{"class": "Dense", "units": 3}], {"layers": "Dense"},
                                   {"input_dim": 2}])
def test_a_model_that_is_not_an_object_with_layers_is_refused_in_full(saved, model):
    config = dict(config_of(saved), model=model)
    assert load_message(rewritten(saved, config)) == (
        f"{str(saved)!r}: the config's 'model' must be an object with a 'layers' list")


def test_an_architecture_without_input_dim_is_refused_in_full(tmp_path):
    # an architecture that declares no parameter: nothing to load into
    net = dn.Sequential([dn.Dense(3)], input_dim=2, seed=0)
    path = tmp_path / "m.npz"
    net.save(path)
    config = config_of(path)
    config["model"]["input_dim"] = None
    contents = {key: value for key, value in entries(path).items()
                if not key.startswith("parameters/")}
    config["state"]["parameters"] = {}
    contents["config"] = np.array(json.dumps(config))
    with open(path, "wb") as f:
        np.savez(f, **contents)
    assert load_message(path) == (f"{str(path)!r}: the config's architecture has no "
                                  "input_dim or no Dense layer")


def test_unknown_entries_are_named_in_full(saved):
    path = rewritten(saved, extra=np.zeros(2), notes=np.zeros(1))
    assert load_message(path) == (f"{str(path)!r}: unknown entries ['extra', 'notes']; "
                                  "descend writes only config and the entries the config "
                                  "names")


def test_a_config_at_the_size_bound_loads_and_one_byte_more_is_refused(saved, monkeypatch):
    nbytes = entries(saved)["config"].nbytes
    monkeypatch.setattr(io, "_MAX_CONFIG_BYTES", nbytes)
    dn.load(saved)
    monkeypatch.setattr(io, "_MAX_CONFIG_BYTES", nbytes - 1)
    assert load_message(saved) == (f"{str(saved)!r}: entry 'config' is {nbytes} bytes, more "
                                   f"than a model config can be ({nbytes - 1})")


# ------------------------------------------------------------------ round trips
def test_bytes_paths_save_and_load(tmp_path):
    net = small_net()
    path = os.fsencode(tmp_path / "m.npz")
    assert net.save(path) == os.fsdecode(path)
    assert os.listdir(tmp_path) == ["m.npz"]
    np.testing.assert_array_equal(dn.load(path).get_weights()[0], net.get_weights()[0])


def test_the_pinned_and_the_used_plan_come_back_from_a_file(tmp_path):
    net = small_net()
    used = dict(net.plan_)
    pinned = net.pin_plan()
    net.save(tmp_path / "m.npz")
    assert config_of(tmp_path / "m.npz")["plan"] == {"pinned": pinned, "used": used}
    loaded = dn.load(tmp_path / "m.npz")
    assert loaded.plan == pinned
    assert loaded.plan_ == used


# ------------------------------------------------------------------ the save's file system steps
def test_the_temporary_is_named_after_target_host_pid_and_8_hex_digits(tmp_path,
                                                                       monkeypatch):
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append((os.path.dirname(src), os.path.basename(src), dst))
        real_replace(src, dst)
    monkeypatch.setattr(io.os, "replace", replace)
    small_net().save(tmp_path / "model.npz")
    (directory, name, target), = seen
    assert directory == str(tmp_path) and target == str(tmp_path / "model.npz")
    assert_full(name, rf"\.model\.npz\.descend-save-{io._host_tag()}-{os.getpid()}-"
                      r"[0-9a-f]{8}\.tmp")


@pytest.mark.parametrize("hostname, tag", [
    ("build-7.example.org", "build7exampleorg"),
    ("a" * 40, "a" * 32),                       # at most 32 characters
    ("---", "host"),                            # nothing usable left
    ("", "host"),
])
def test_the_host_tag_keeps_letters_and_digits_of_the_host_name(monkeypatch, hostname, tag):
    monkeypatch.setattr(io.socket, "gethostname", lambda: hostname)
    assert io._host_tag() == tag


def test_an_existing_temporary_of_the_same_name_is_never_overwritten(tmp_path, monkeypatch):
    # O_EXCL: a name already taken (by a live save) is an error, not a shared file
    path = tmp_path / "model.npz"
    path.write_bytes(b"previous")
    monkeypatch.setattr(io.secrets, "token_hex", lambda n: "0a1b2c3d")
    taken = tmp_path / f".model.npz.descend-save-{io._host_tag()}-{os.getpid()}-0a1b2c3d.tmp"
    taken.write_bytes(b"another save's data")
    with pytest.raises(FileExistsError) as info:
        small_net().save(path)
    assert info.value.errno == errno.EEXIST and info.value.filename == str(path)
    assert taken.read_bytes() == b"another save's data"
    assert path.read_bytes() == b"previous"


def test_a_save_into_a_missing_directory_names_the_users_path(tmp_path):
    path = tmp_path / "no such directory" / "m.npz"
    with pytest.raises(FileNotFoundError) as info:
        small_net().save(path)
    assert info.value.errno == errno.ENOENT
    assert info.value.strerror == os.strerror(errno.ENOENT)
    assert info.value.filename == str(path)


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    small_net().save(path)
    before = path.read_bytes()

    def disk_full(file, **arrays):
        file.write(b"PK\x03\x04 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(io.np, "savez", disk_full)
    with pytest.raises(OSError) as info:
        small_net(epochs=2).save(path)
    assert info.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == ["model.npz"]
    assert path.read_bytes() == before


@pytest.mark.skipif(os.name == "nt", reason="no directory fsync on Windows")
def test_a_directory_fsync_refused_by_the_file_system_does_not_fail_the_save(tmp_path,
                                                                             monkeypatch):
    real_fsync = os.fsync
    refused = []

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            refused.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        real_fsync(fd)
    monkeypatch.setattr(io.os, "fsync", fsync)
    net = small_net()
    net.save(tmp_path / "m.npz")
    assert len(refused) == 1
    np.testing.assert_array_equal(dn.load(tmp_path / "m.npz").get_weights()[0],
                                  net.get_weights()[0])


@pytest.mark.skipif(os.name == "nt", reason="os.kill(pid, 0) probes POSIX processes")
def test_stale_temporaries_are_found_wherever_they_are_listed(tmp_path, monkeypatch):
    # the dead save's temporary comes after names that are not one: each is skipped,
    # and the scan goes on
    dead = 2**22 + 12345            # above the default pid_max: no such process
    with pytest.raises(ProcessLookupError):
        os.kill(dead, 0)
    prefix = f".model.npz.descend-save-{io._host_tag()}-"
    # a temporary of a save to another name of the same length ("mode2.npz"): its pid
    # sits where a temporary of model.npz has its own
    same_length = f".mode2.npz.descend-save-{io._host_tag()}-{dead}-0a1b2c3d.tmp"
    names = ["notes.txt", f"{prefix}{dead}-0a1b2c3d.npz", f"{prefix}x{dead}-0a1b2c3d.tmp",
             same_length, f"{prefix}{dead}-0a1b2c3d.tmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"partial")
    monkeypatch.setattr(io.os, "listdir", lambda directory: list(names))
    io._remove_stale_temporaries(str(tmp_path), "model.npz")
    monkeypatch.undo()          # pathlib lists with os.listdir too
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[:-1])


@pytest.mark.skipif(os.name == "nt", reason="os.kill(pid, 0) probes POSIX processes")
def test_an_unlistable_directory_skips_the_clean_up(tmp_path, monkeypatch):
    def refused(directory):
        raise PermissionError(errno.EACCES, "Permission denied", directory)
    monkeypatch.setattr(io.os, "listdir", refused)
    net = small_net()
    net.save(tmp_path / "m.npz")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["m.npz"]


# ------------------------------------------------------------------ format 1 details
def test_format_1_optimizer_counts_must_have_one_entry_per_parameter(tmp_path):
    # five parameters, one SGD slot each: four or six counts of 1 do not describe it
    source = os.path.join(os.path.dirname(__file__), "data", "v1_sgd_momentum_strings.npz")
    with np.load(source, allow_pickle=False) as f:
        contents = {key: f[key] for key in f.files}
    config = json.loads(str(contents["config"][()]))
    for counts in ([1] * 4, [1] * 6):
        config["optimizer_state"] = dict(config["optimizer_state"], n_arrays=counts)
        contents["config"] = np.array(json.dumps(config))
        path = tmp_path / "v1.npz"
        np.savez(path, **contents)
        assert load_message(path) == (f"{str(path)!r}: the optimizer state must have 1 "
                                      "array(s) for each of the 5 parameters, the config "
                                      f"says {counts!r}")
