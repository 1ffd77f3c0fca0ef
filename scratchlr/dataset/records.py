"""The data sets scratchlr knows, each one frozen record: what a data set is, in one place.

A record names its four IDX files (train and t10k images and labels), the MD5 each is checked
against and which bytes that MD5 is of, their shapes, the public mirrors that serve them, the
class names, and where its folder is by default. torchvision's ``FashionMNIST(MNIST)`` overrides
three attributes; here a new data set is one more record in :data:`DATASETS`.

MNIST's MD5s are of the decompressed IDX payload (the ones widely published; they accept the
official ``.gz`` files, re-compressed ones and uncompressed files alike). Fashion-MNIST's and
KMNIST's published MD5s (their READMEs', torchvision's) are of the ``.gz`` files as served, so
only such a ``.gz`` file can be verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PAYLOAD = "payload"  # the MD5 of the decompressed IDX bytes: any copy can be verified
GZ_FILE = "gz file"  # the MD5 of the .gz file as published: only that file can be verified
TRAIN_FILES = ("train_images", "train_labels")  # all a search reads: it never sees the test set
TEST_FILES = ("test_images", "test_labels")  # all the demo page reads (scratchlr serve)
ALL_FILES = TRAIN_FILES + TEST_FILES
DEFAULT_VALIDATION_SIZE = 5000  # TensorFlow's input_data held out the first 5,000 training images


@dataclass(frozen=True)
class DataFile:
    """One published file: its name (``.gz``), its MD5 and which bytes that is of
    (:data:`PAYLOAD` or :data:`GZ_FILE`), the size of its decompressed IDX bytes, and the shape
    of its array."""

    name: str
    md5: str
    md5_of: str
    size: int
    shape: tuple[int, ...]

    @property
    def plain_name(self) -> str:
        """The file's name uncompressed: its name without ``.gz``."""
        return self.name[: -len(".gz")]


@dataclass(frozen=True)
class Dataset:
    """A data set: ``name`` as ``--dataset`` says it, a ``title`` for messages, the class
    names (class c is ``classes[c]``), its four files keyed ``train_images``, ``train_labels``,
    ``test_images``, ``test_labels``, the public ``mirrors``, the default ``folder`` and the
    environment variable (``env``) that names another."""

    name: str
    title: str
    classes: tuple[str, ...]
    files: dict[str, DataFile] = field(hash=False)
    mirrors: tuple[str, ...]
    folder: str
    env: str

    @property
    def train_size(self) -> int:
        """Examples in the training file (validation included)."""
        return self.files["train_labels"].shape[0]

    @property
    def test_size(self) -> int:
        """Examples in the test file."""
        return self.files["test_labels"].shape[0]

    @property
    def side(self) -> int:
        """The images are side x side."""
        return self.files["train_images"].shape[1]

    @property
    def pixels(self) -> int:
        """D, the pixels of an image: the length of a row of X."""
        rows, cols = self.files["train_images"].shape[1:]
        return rows * cols

    @property
    def num_classes(self) -> int:
        """C, the number of classes: the columns of W."""
        return len(self.classes)

    @property
    def named_classes(self) -> tuple[str, ...] | None:
        """The class names where they say more than the class numbers; None where class c
        is just called "c" (MNIST's digits), so that reports show the numbers alone."""
        numbers = tuple(str(c) for c in range(self.num_classes))
        return None if self.classes == numbers else self.classes


def idx_files(
    md5s: tuple[str, str, str, str], md5_of: str, train: int, test: int, side: int
) -> dict[str, DataFile]:
    """The four files under the names MNIST published them (which Fashion-MNIST and KMNIST
    kept): ``md5s`` in the order train images, train labels, test images, test labels, each
    of ``md5_of``; ``train`` and ``test`` examples of side x side ``uint8`` images. An IDX
    file's bytes: a 4-byte magic, 4 bytes per dimension, then one byte per item."""
    train_images = DataFile(
        "train-images-idx3-ubyte.gz", md5s[0], md5_of, 16 + train * side * side, (train, side, side)
    )
    train_labels = DataFile("train-labels-idx1-ubyte.gz", md5s[1], md5_of, 8 + train, (train,))
    test_images = DataFile(
        "t10k-images-idx3-ubyte.gz", md5s[2], md5_of, 16 + test * side * side, (test, side, side)
    )
    test_labels = DataFile("t10k-labels-idx1-ubyte.gz", md5s[3], md5_of, 8 + test, (test,))
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }


MNIST = Dataset(
    name="mnist",
    title="MNIST",
    classes=tuple(str(digit) for digit in range(10)),
    files=idx_files(
        (
            "6bbc9ace898e44ae57da46a324031adb",
            "a25bea736e30d166cdddb491f175f624",
            "2646ac647ad5339dbf082846283269ea",
            "27ae3e4e09519cfbb04c329615203637",
        ),
        PAYLOAD,
        train=60000,
        test=10000,
        side=28,
    ),
    mirrors=(  # torchvision's, TensorFlow's, LeCun's
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    folder="data/mnist",
    env="SCRATCHLR_DATA",
)

FASHION_MNIST = Dataset(
    name="fashion-mnist",
    title="Fashion-MNIST",
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    files=idx_files(
        (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
        GZ_FILE,
        train=60000,
        test=10000,
        side=28,
    ),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),  # Zalando's
    folder="data/fashion-mnist",
    env="SCRATCHLR_FASHION_MNIST_DATA",
)

KMNIST = Dataset(
    name="kmnist",
    title="KMNIST",
    classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),  # as torchvision
    files=idx_files(
        (
            "bdb82020997e1d708af4cf47b453dcf7",
            "e144d726b3acfaa3e44228e80efcd344",
            "5c965bf0a639b31b8f53240b1b52f4d7",
            "7320c461ea6c1c855c0b718fb2a4b134",
        ),
        GZ_FILE,
        train=60000,
        test=10000,
        side=28,
    ),
    mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),  # ROIS-DS CODH's
    folder="data/kmnist",
    env="SCRATCHLR_KMNIST_DATA",
)

#: Each record by its ``--dataset`` name.
DATASETS = {record.name: record for record in (MNIST, FASHION_MNIST, KMNIST)}
