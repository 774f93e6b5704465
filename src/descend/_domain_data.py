"""Text and fraud data for the domains experiment (re-exported by
:mod:`descend.datasets`).

* :func:`load_newsgroups` -- the "bydate" 20 newsgroups corpus (Lang 1995)
  as TF-IDF features: ``20news-bydate.tar.gz`` (14 MB), the archive
  scikit-learn's ``fetch_20newsgroups`` uses, with the same SHA-256.
* :func:`load_creditcard` -- the credit-card fraud transactions of
  Dal Pozzolo et al. (2015), 284,807 rows of which 492 frauds (0.17%), as
  published on OpenML (dataset 1597, ``creditcard.arff``, checked against
  the MD5 OpenML lists for it) or Kaggle (``creditcard.csv``).

Both look for their file in a data directory (``data_home``, else
``$DESCEND_DATA``, else ``~/.cache/descend/<name>``) and download it there
when it is missing and ``download`` is true; a download goes to a temporary
file that is checked and then renamed, so the directory only ever holds
complete, verified files. Like :mod:`descend.datasets`, this module needs
only NumPy and the standard library.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import json
import math
import os
import re
import tarfile
import tempfile
import urllib.request
from numbers import Integral
from pathlib import Path

import numpy as np

from descend._validation import InstanceOf, Interval, check, validate_params

NEWSGROUPS_ARCHIVE = "20news-bydate.tar.gz"
NEWSGROUPS_URL = "https://ndownloader.figshare.com/files/5975967"
NEWSGROUPS_SHA256 = "8f1b2514ca22a5ade8fbb9cfa5727df95fa587f4c87b786e15c759fa66d95610"
NEWSGROUPS_CATEGORIES = ("alt.atheism", "comp.graphics", "sci.med", "soc.religion.christian")
"""The four-category subset of scikit-learn's text tutorial (2,257 training posts)."""

CREDITCARD_FILES = ("creditcard.arff", "creditcard.csv")
CREDITCARD_OPENML_ID = 1597
CREDITCARD_COLUMNS = 31         # Time, V1..V28, Amount, Class

_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def get_data_dir(name, data_home=None):
    """The directory a dataset's files are read from and downloaded to.

    ``data_home`` if given, else ``$DESCEND_DATA`` if set, else
    ``~/.cache/descend/<name>``; checked as :func:`descend.datasets.load_mnist`
    checks its directory.

    Raises
    ------
    ValueError
        For a ``data_home`` that is empty; for a value (``data_home`` or a
        non-empty ``DESCEND_DATA``) that is only whitespace, a ``~name`` of
        no known user, holds a NUL byte, or is an existing file or a path
        under one.
    TypeError
        For a value that is not a str or os.PathLike.
    """
    from descend.datasets import _data_dir, _not_a_file
    directory = _data_dir(data_home, name)
    _not_a_file(directory, data_home)
    return directory


def _fetch(url, target, check, timeout):
    """Download url to target through a checked temporary file.

    `check(path)` raises ValueError when the downloaded content is wrong.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "descend"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        check(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _digest(path, algorithm):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _missing(what, directory, hint, errors=()):
    from descend.datasets import DatasetNotFoundError
    return DatasetNotFoundError(
        f"{what} not found in {directory}" + (" and could not be downloaded:\n  "
                                              + "\n  ".join(errors) if errors else "")
        + f"\n{hint}\nor point data_home (the CLI's --data-home) or DESCEND_DATA to the "
        "directory that holds it.")


# ------------------------------------------------------------------ 20 newsgroups
def newsgroups_available(data_home=None):
    """True when the 20 newsgroups archive is in ``data_home`` (or the default
    data directory), so that the domains experiment can run its text row."""
    return (get_data_dir("newsgroups", data_home) / NEWSGROUPS_ARCHIVE).exists()


_CATEGORIES = InstanceOf(tuple, list, set, frozenset,
                         description="a list of newsgroup names (str)")


@validate_params({"data_home": [None, "path"], "download": ["boolean"],
                  "categories": [None, _CATEGORIES], "n_features": [Interval(Integral, 1, None)],
                  "dtype": ["dtype"], "timeout": ["timeout"],
                  "verify": ["boolean"]})
def load_newsgroups(data_home=None, download=True, categories=NEWSGROUPS_CATEGORIES,
                    n_features=2000, dtype="float32", timeout=60.0, verify=True):
    """20 newsgroups posts as TF-IDF features (text classification).

    The posts' headers (everything up to the first blank line, which names
    the newsgroup) are dropped. The vocabulary is the `n_features` words
    (lower-cased, 2+ word characters) in the most training posts; the
    features are tf * idf with idf = ln((1 + n) / (1 + df)) + 1 (df and n
    counted on the training posts only), each row scaled to unit L2 norm,
    as scikit-learn's ``TfidfVectorizer(max_features=n_features)``.

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        Directory of ``20news-bydate.tar.gz`` (see :func:`get_data_dir`).
    download : bool, default True
        Download the archive (14 MB) when it is missing.
    categories : sequence of str or None
        Newsgroups to keep (None: all 20); labels follow their sorted order.
    n_features : int, default 2000
    dtype : "float32" or "float64"
    timeout : float, default 60.0
        Socket timeout in seconds for the download, in
        (0, ``threading.TIMEOUT_MAX``].
    verify : bool, default True
        Check the archive's SHA-256 (turn off only for test archives).

    Returns
    -------
    X_train, y_train, X_test, y_test, names
        X of shape (n_posts, n_features) in `dtype`; y int64 labels indexing
        `names`, the sorted category names.

    Raises
    ------
    DatasetNotFoundError
        The archive is missing and could not be downloaded.
    TypeError, ValueError
        An argument of the wrong type or value (named in the message), such
        as a ``timeout`` not in (0, ``threading.TIMEOUT_MAX``], checked
        before anything is read or downloaded.
    ValueError
        The archive's SHA-256 does not match, it is not a gzip-compressed
        tar archive, one of the categories asked for has no training posts
        in it (a misspelt name: the message lists the archive's newsgroups),
        none is asked for, or their bodies hold no word.
    """
    if categories is not None:
        categories = [check(name, f"categories[{i}]", ["str"], "load_newsgroups")
                      for i, name in enumerate(categories)]
    directory = get_data_dir("newsgroups", data_home)
    path = directory / NEWSGROUPS_ARCHIVE
    if not path.exists():
        hint = (f"Download {NEWSGROUPS_URL} (SHA-256 {NEWSGROUPS_SHA256}) as "
                f"{path}")
        if not download:
            raise _missing(NEWSGROUPS_ARCHIVE, directory, hint)
        try:
            _fetch(NEWSGROUPS_URL, path, _check_sha256, timeout)
        except (OSError, http.client.HTTPException) as exc:
            raise _missing(NEWSGROUPS_ARCHIVE, directory, hint, [str(exc)]) from None
    elif verify:
        _check_sha256(path)
    train, test, groups = _read_newsgroups(path, categories)
    names = sorted({c for c, _ in train})
    unknown = sorted(set(categories or ()) - set(names))
    if unknown:     # (was: left out silently, a typo leaving a one-class problem)
        raise ValueError(f"load_newsgroups: categories {unknown} have no training posts in "
                         f"{path}; its newsgroups are {sorted(groups)}")
    if not names:
        raise ValueError(f"{path} holds no posts of the categories {categories}")
    index = {c: i for i, c in enumerate(names)}
    test = [(c, t) for c, t in test if c in index]
    vocabulary, idf = _fit_tfidf([t for _, t in train], n_features)
    if not vocabulary:
        raise ValueError(f"{path}: the training posts of {names} hold no word "
                         "(2+ letters or digits): no TF-IDF feature to make")
    X_train = _tfidf([t for _, t in train], vocabulary, idf, dtype)
    X_test = _tfidf([t for _, t in test], vocabulary, idf, dtype)
    y_train = np.array([index[c] for c, _ in train], dtype=np.int64)
    y_test = np.array([index[c] for c, _ in test], dtype=np.int64)
    return X_train, y_train, X_test, y_test, names


def _check_sha256(path):
    got = _digest(path, "sha256")
    if got != NEWSGROUPS_SHA256:
        raise ValueError(f"{path}: SHA-256 {got} does not match the 20 newsgroups archive's "
                         f"{NEWSGROUPS_SHA256}; the file is corrupt or another file")


def _read_newsgroups(path, categories):
    """[(category, text)] of the train and test folders, in archive-name order,
    and the set of every newsgroup of the train folder."""
    wanted = None if categories is None else set(categories)
    parts = {"20news-bydate-train": [], "20news-bydate-test": []}
    groups = set()
    try:
        archive = tarfile.open(path, "r:gz")
        members = sorted((m for m in archive.getmembers() if m.isfile()),
                         key=lambda m: m.name)
    except (tarfile.TarError, EOFError, OSError) as exc:   # OSError: gzip's BadGzipFile
        raise ValueError(f"{path} is not a readable .tar.gz archive "
                         f"(truncated or another file?): {exc}") from None
    with archive:
        for member in members:
            pieces = member.name.split("/")
            if len(pieces) != 3 or pieces[0] not in parts:
                continue
            if pieces[0] == "20news-bydate-train":
                groups.add(pieces[1])
            if wanted is not None and pieces[1] not in wanted:
                continue
            text = archive.extractfile(member).read().decode("latin-1")
            _, _, body = text.partition("\n\n")     # drop the headers
            parts[pieces[0]].append((pieces[1], body))
    return parts["20news-bydate-train"], parts["20news-bydate-test"], groups


def _fit_tfidf(texts, n_features):
    df = {}
    for text in texts:
        for word in set(_TOKEN.findall(text.lower())):
            df[word] = df.get(word, 0) + 1
    ranked = sorted(df, key=lambda w: (-df[w], w))[:n_features]
    vocabulary = {w: i for i, w in enumerate(sorted(ranked))}
    n = len(texts)
    idf = np.array([math.log((1 + n) / (1 + df[w])) + 1 for w in sorted(ranked)])
    return vocabulary, idf


def _tfidf(texts, vocabulary, idf, dtype):
    X = np.zeros((len(texts), len(vocabulary)), dtype=np.float64)
    for row, text in enumerate(texts):
        columns = [vocabulary[w] for w in _TOKEN.findall(text.lower()) if w in vocabulary]
        np.add.at(X[row], columns, 1.0)
    X *= idf
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    np.divide(X, norms, out=X, where=norms > 0)
    return X.astype(dtype)


# ------------------------------------------------------------------ card fraud
def creditcard_available(data_home=None):
    """True when a card-fraud file (OpenML ARFF or Kaggle CSV) is in
    ``data_home`` (or the default data directory)."""
    directory = get_data_dir("creditcard", data_home)
    return any((directory / name).exists() for name in CREDITCARD_FILES)


@validate_params({"data_home": [None, "path"], "download": ["boolean"], "dtype": ["dtype"],
                  "timeout": ["timeout"]})
def load_creditcard(data_home=None, download=True, dtype="float32", timeout=120.0):
    """Credit-card transactions labelled fraud (1) or genuine (0).

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        Directory of ``creditcard.arff`` (OpenML) or ``creditcard.csv``
        (Kaggle); see :func:`get_data_dir`.
    download : bool, default True
        Download ``creditcard.arff`` (150 MB) from OpenML when neither file
        is there, checked against the MD5 OpenML publishes for it.
    dtype : "float32" or "float64"
    timeout : float, default 120.0
        Socket timeout in seconds for each request of the download, in
        (0, ``threading.TIMEOUT_MAX``].

    Returns
    -------
    X : ndarray, shape (n, 30)
        Time (seconds from the first transaction), V1..V28 (PCA components)
        and Amount, unscaled.
    y : ndarray of int64, shape (n,)
        1 for fraud.

    Raises
    ------
    DatasetNotFoundError
        No file and no download.
    TypeError, ValueError
        An argument of the wrong type or value (named in the message), such
        as a ``timeout`` not in (0, ``threading.TIMEOUT_MAX``], checked
        before anything is read or downloaded.
    ValueError
        A file that is empty, has no rows, a CSV whose first line is not
        the header of the 31 column names, a file without the 31 numeric
        columns, holds NaN or infinite values (also after conversion to
        `dtype`), or labels other than 0 and 1.
    """
    directory = get_data_dir("creditcard", data_home)
    for name in CREDITCARD_FILES:
        if (directory / name).exists():
            return _read_creditcard(directory / name, dtype)
    hint = (f"Download OpenML dataset {CREDITCARD_OPENML_ID} "
            f"(https://www.openml.org/d/{CREDITCARD_OPENML_ID}) as "
            f"{directory / 'creditcard.arff'}, or Kaggle's creditcard.csv into {directory}")
    if not download:
        raise _missing("creditcard.arff / creditcard.csv", directory, hint)
    try:
        _fetch_openml_creditcard(directory / "creditcard.arff", timeout)
    except (OSError, http.client.HTTPException, KeyError, TypeError) as exc:
        raise _missing("creditcard.arff", directory, hint, [str(exc)]) from None
    return _read_creditcard(directory / "creditcard.arff", dtype)


def _fetch_openml_creditcard(target, timeout):
    url = f"https://api.openml.org/api/v1/json/data/{CREDITCARD_OPENML_ID}"
    request = urllib.request.Request(url, headers={"User-Agent": "descend"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        description = json.load(response)["data_set_description"]
    expected = description["md5_checksum"]

    def check(path):
        got = _digest(path, "md5")
        if got != expected:
            raise ValueError(f"{description['url']}: MD5 {got} does not match OpenML's "
                             f"{expected}")
    _fetch(description["url"], target, check, timeout)


CREDITCARD_HEADER = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class")


def _csv_rows(path, lines):
    """The data lines of Kaggle's creditcard.csv, after its header line of
    the 31 column names (quoted or not); ValueError naming what line 0 holds
    when it is not that header (a missing header would lose a row)."""
    if not lines:
        raise ValueError(f"{path}: the file is empty")
    names = tuple(name.strip().strip("\"'").strip() for name in lines[0].split(","))
    if names != CREDITCARD_HEADER:
        try:
            [float(name) for name in names]
            found = "a row of numbers: the header line is missing"
        except ValueError:
            found = f"{len(names)} columns, not the expected names"
        raise ValueError(f"{path}: expected a CSV header line of the {CREDITCARD_COLUMNS} "
                         f"columns Time,V1,...,V28,Amount,Class, got {lines[0][:80]!r} "
                         f"({found})")
    return lines[1:]


def _read_creditcard(path, dtype):
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".arff":
        data = re.search(r"(?im)^@data\s*$", text)
        header, body = (text[:data.start()], text[data.end():]) if data else (text, "")
        attributes = re.findall(r"(?im)^@attribute\s", header)
        if not data or len(attributes) != CREDITCARD_COLUMNS:
            raise ValueError(f"{path}: expected an ARFF file with {CREDITCARD_COLUMNS} "
                             f"attributes and @data, found {len(attributes)} attributes")
        rows = [line for line in body.splitlines() if line.strip() and line[0] != "%"]
    else:
        rows = _csv_rows(path, text.splitlines())
    if not any(row.strip() for row in rows):
        raise ValueError(f"{path}: no rows of data")
    try:
        table = np.loadtxt(io.StringIO("\n".join(rows).replace('"', "").replace("'", "")),
                           delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: not {CREDITCARD_COLUMNS} numeric columns: {exc}") from None
    if table.shape[1] != CREDITCARD_COLUMNS:
        raise ValueError(f"{path}: rows of {table.shape[1]} values, expected "
                         f"{CREDITCARD_COLUMNS}")
    y = table[:, -1]
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{path}: the Class column holds values other than 0 and 1")
    with np.errstate(over="ignore"):        # reported below
        X = table[:, :-1].astype(dtype)
    if not np.isfinite(X).all():
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
        raise ValueError(f"{path}: {bad.size} row(s) hold NaN or infinite values (in "
                         f"{np.dtype(dtype)}), the first at data row {bad[0] + 1}")
    return X, y.astype(np.int64)
