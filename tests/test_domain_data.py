"""Loaders of the domains experiment's text and fraud data, on small files
in the real formats made here (no network)."""
import io
import math
import tarfile
import threading

import numpy as np
import pytest

from descend import _domain_data, datasets

POSTS = {
    ("20news-bydate-train", "sci.med", "1"): "From: a\nSubject: x\n\ndoctor patient doctor",
    ("20news-bydate-train", "sci.med", "2"): "From: b\n\npatient pain",
    ("20news-bydate-train", "comp.graphics", "3"): "From: c\n\nimage pixel image render",
    ("20news-bydate-train", "rec.autos", "4"): "From: d\n\ncar engine",
    ("20news-bydate-test", "sci.med", "5"): "From: e\nSubject: image\n\ndoctor image zebra",
    ("20news-bydate-test", "comp.graphics", "6"): "From: f\n\npixel",
}


def newsgroups_archive(directory, posts):
    """`directory` with a 20 newsgroups archive of `posts` ({(part, group,
    name): text}) in it."""
    with tarfile.open(directory / datasets.NEWSGROUPS_ARCHIVE, "w:gz") as archive:
        for (part, group, name), text in posts.items():
            data = text.encode("latin-1")
            info = tarfile.TarInfo(f"{part}/{group}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return directory


@pytest.fixture
def newsgroups_dir(tmp_path):
    return newsgroups_archive(tmp_path, POSTS)


def test_newsgroups_tfidf_by_hand(newsgroups_dir):
    X, y, X_test, y_test, names = datasets.load_newsgroups(
        newsgroups_dir, download=False, categories=("sci.med", "comp.graphics"),
        n_features=3, verify=False)
    assert names == ["comp.graphics", "sci.med"]
    # training posts: graphics "image pixel image render", med "doctor patient
    # doctor", med "patient pain"; each word in one post except patient (2);
    # the 3 most frequent: patient, then doctor and image (ties by name)
    # -> vocabulary sorted: doctor, image, patient
    assert X.shape == (3, 3) and X.dtype == np.float32
    assert y.tolist() == [0, 1, 1]
    idf1, idf2 = math.log(4 / 2) + 1, math.log(4 / 3) + 1
    expected = np.array([[0, 2 * idf1, 0], [2 * idf1, 0, idf2], [0, 0, 1.0]])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(X, expected, rtol=1e-6)
    # test posts: the header's "image" is dropped, zebra is unknown
    assert y_test.tolist() == [0, 1]
    np.testing.assert_allclose(X_test[1], np.array([idf1, idf1, 0]) / math.hypot(idf1, idf1),
                               rtol=1e-6)
    assert not X_test[0].any()      # "pixel" is not in the vocabulary


def test_newsgroups_archive_checksum_is_checked(newsgroups_dir):
    with pytest.raises(ValueError, match="SHA-256"):
        datasets.load_newsgroups(newsgroups_dir, download=False)


def test_missing_data_names_the_file_and_the_directory(tmp_path):
    with pytest.raises(datasets.DatasetNotFoundError, match="20news-bydate.tar.gz") as info:
        datasets.load_newsgroups(tmp_path, download=False)
    assert str(tmp_path) in str(info.value) and "--data-home" in str(info.value)
    with pytest.raises(datasets.DatasetNotFoundError, match="creditcard") as info:
        datasets.load_creditcard(tmp_path, download=False)
    assert "openml.org/d/1597" in str(info.value)


ROWS = np.array([[0.0] + [0.5] * 28 + [12.5, 0], [1.0] + [-1.5] * 28 + [3.0, 1],
                 [2.0] + [0.25] * 28 + [0.0, 0]])


def test_creditcard_from_openml_arff(tmp_path):
    names = ["Time"] + [f"V{i}" for i in range(1, 29)] + ["Amount"]
    text = "% the OpenML creditcard layout\n@RELATION creditcard\n\n"
    text += "".join(f"@ATTRIBUTE {n} NUMERIC\n" for n in names)
    text += "@ATTRIBUTE Class {'0','1'}\n\n@DATA\n"
    text += "".join(",".join(f"{v:g}" for v in row[:-1]) + f",'{int(row[-1])}'\n"
                    for row in ROWS)
    (tmp_path / "creditcard.arff").write_text(text)
    X, y = datasets.load_creditcard(tmp_path, download=False)
    assert X.dtype == np.float32 and X.shape == (3, 30)
    np.testing.assert_array_equal(X, ROWS[:, :-1].astype(np.float32))
    assert y.tolist() == [0, 1, 0]


def test_creditcard_from_kaggle_csv(tmp_path):
    header = ",".join(f'"{n}"' for n in ["Time"] + [f"V{i}" for i in range(1, 29)]
                      + ["Amount", "Class"])
    lines = [header] + [",".join(f"{v:g}" for v in row[:-1]) + f',"{int(row[-1])}"'
                        for row in ROWS]
    (tmp_path / "creditcard.csv").write_text("\n".join(lines) + "\n")
    X, y = datasets.load_creditcard(tmp_path, download=False, dtype="float64")
    np.testing.assert_array_equal(X, ROWS[:, :-1])
    assert y.tolist() == [0, 1, 0]


def test_a_creditcard_file_of_another_layout_is_refused(tmp_path):
    (tmp_path / "creditcard.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="31 columns"):
        datasets.load_creditcard(tmp_path, download=False)
    (tmp_path / "creditcard.csv").write_text(
        ",".join(_domain_data.CREDITCARD_HEADER) + "\n" + ",".join(["1"] * 30)
        + ",7\n")
    with pytest.raises(ValueError, match="other than 0 and 1"):
        datasets.load_creditcard(tmp_path, download=False)


def test_a_creditcard_csv_without_its_header_line_is_refused(tmp_path):
    # was: line 0 taken as the header for having 31 fields: its row silently lost
    text = "".join(",".join(f"{v:g}" for v in row) + "\n" for row in ROWS)
    (tmp_path / "creditcard.csv").write_text(text)
    with pytest.raises(ValueError, match=r"expected a CSV header line .*Time,V1,...,V28,"
                                         r"Amount,Class, got '0,0.5,.*header line is missing"):
        datasets.load_creditcard(tmp_path, download=False)
    (tmp_path / "creditcard.csv").write_text(",".join(["x"] * 31) + "\n" + text)
    with pytest.raises(ValueError, match=r"got 'x,x,.*\(31 columns, not the expected names"):
        datasets.load_creditcard(tmp_path, download=False)


@pytest.mark.parametrize("load", [datasets.load_newsgroups, datasets.load_creditcard])
@pytest.mark.parametrize("value, message", [
    ("~no_such_user_descend/data", "its leading ~ the home directory"),
    ("   ", "only whitespace")])
def test_a_data_home_of_no_known_user_or_only_space_is_load_mnists_value_error(
        monkeypatch, load, value, message):
    # was: pathlib's RuntimeError "Could not determine home directory."; "   "
    # was taken as a directory named three spaces
    with pytest.raises(ValueError, match=f"data_home must be a directory.*{message}"):
        load(data_home=value, download=False)
    monkeypatch.setenv("DESCEND_DATA", value)
    with pytest.raises(ValueError, match=f"DESCEND_DATA must be a directory.*{message}"):
        load(download=False)


@pytest.mark.parametrize("load", [datasets.load_newsgroups, datasets.load_creditcard])
def test_a_data_home_naming_a_file_is_load_mnists_value_error(tmp_path, monkeypatch, load):
    # was: "... not found in <the file>" (a DatasetNotFoundError)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"data_home must be a directory, got '.*file' "
                                         r"\(a file\)"):
        load(data_home=tmp_path / "file", download=False)
    monkeypatch.setenv("DESCEND_DATA", str(tmp_path / "file"))
    with pytest.raises(ValueError, match=r"DESCEND_DATA must be a directory, got '.*file' "
                                         r"\(a file\)"):
        load(download=False)


@pytest.mark.parametrize("load", [datasets.load_newsgroups, datasets.load_creditcard])
@pytest.mark.parametrize("timeout, shown", [
    (1e300, r"1e\+300"), (threading.TIMEOUT_MAX * 2, r"18446744072\.0"), (0, "0"),
    (float("nan"), "nan")])
def test_a_timeout_beyond_what_a_socket_takes_is_a_value_error(tmp_path, load, timeout,
                                                              shown):
    # was: accepted, so an OverflowError from the socket layer once the
    # download started (here, with download=False: "not found")
    with pytest.raises(ValueError, match=rf"{load.__name__}: timeout must be a finite float "
                                         rf"in \(0, 9\.22337e\+09\], got {shown} "):
        load(tmp_path, download=False, timeout=timeout)
    with pytest.raises(datasets.DatasetNotFoundError):
        load(tmp_path, download=False, timeout=threading.TIMEOUT_MAX)


def test_an_empty_data_home_is_refused_as_load_mnist_refuses_it(monkeypatch, tmp_path):
    # was: get_data_dir(name, '') == Path('.'), so newsgroups_available('')
    # looked in the current directory
    monkeypatch.chdir(tmp_path)
    message = r"data_home must be a directory, got '': an empty path \(write '\.' for"
    for name in ("newsgroups", "creditcard"):
        with pytest.raises(ValueError, match=message):
            _domain_data.get_data_dir(name, "")
    for available in (_domain_data.newsgroups_available, _domain_data.creditcard_available):
        with pytest.raises(ValueError, match=message):
            available("")
    for load in (datasets.load_newsgroups, datasets.load_creditcard):
        with pytest.raises(ValueError,
                           match=r"data_home must be None or a non-empty str .*, got ''"):
            load(data_home="", download=False)
    monkeypatch.setenv("DESCEND_DATA", "")          # still "unset"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _domain_data.get_data_dir("newsgroups") == tmp_path / ".cache" / "descend" / \
        "newsgroups"
