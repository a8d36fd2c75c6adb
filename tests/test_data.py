import functools
import io
import itertools
import os
import re
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import damage_past_the_header, random_rgb, write_png16
from PIL import Image

from gan.core.registry import ConfigError
from gan.data import build_dataset
from gan.data.decode import ImageFolderGone, ImageReadError, UnreadableImageWarning, check_header, read_rgb
from gan.data.image_files import celeba_dataset, image_folder_dataset
from gan.data.sampling import ResumableSampler, batches
from gan.data.synthetic import SyntheticFaces
from gan.training.resolve import load_config


@pytest.fixture
def odd_images(tmp_path):
    """One image of each awkward kind, some in a subfolder."""
    root = tmp_path / "odd"
    (root / "nested" / "deeper").mkdir(parents=True)
    random_rgb((40, 30), 0).save(root / "rgb.jpg")
    random_rgb((30, 40), 1).convert("L").save(root / "gray.png")
    random_rgb((32, 32), 2).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "palette.png")
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(root / "nested" / "transparent.png")
    Image.fromarray(np.full((16, 24), 65535, np.uint16)).save(root / "nested" / "gray16.png")
    write_png16(root / "nested" / "deeper" / "rgb16.png", np.full((8, 8, 3), [65535, 32896, 0], np.uint16))
    random_rgb((33, 33), 3).save(root / "nested" / "a.webp")
    random_rgb((33, 17), 4).save(root / "nested" / "b.BMP")
    (root / "notes.txt").write_text("not an image")
    return root


def test_every_mode_becomes_rgb_in_range(odd_images):
    dataset = image_folder_dataset(odd_images, resolution=16)
    assert len(dataset) == 8  # the .txt file is not an image
    for index in range(len(dataset)):
        image = dataset[index]["image"]
        assert image.shape == (3, 16, 16) and image.dtype == torch.float32
        assert image.min() >= -1 and image.max() <= 1


def test_sixteen_bit_and_transparent_images_keep_their_values(odd_images):
    assert np.asarray(read_rgb(odd_images / "nested" / "gray16.png"))[0, 0].tolist() == [255, 255, 255]
    assert np.asarray(read_rgb(odd_images / "nested" / "deeper" / "rgb16.png"))[0, 0].tolist() == [255, 128, 0]
    # fully transparent red is composited over white, not shown as red
    assert np.asarray(read_rgb(odd_images / "nested" / "transparent.png"))[0, 0].tolist() == [255, 255, 255]
    half = odd_images / "half16.png"
    Image.fromarray(np.full((4, 4), 32896, np.uint16)).save(half)  # 16-bit mid-grey is scaled, not clipped
    assert np.asarray(read_rgb(half))[0, 0].tolist() == [128, 128, 128]


def test_corrupt_file_is_skipped_with_a_warning_naming_it(tmp_path):
    random_rgb((20, 20), 0).save(tmp_path / "good.png")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.warns(UnreadableImageWarning) as caught:
        dataset = image_folder_dataset(tmp_path, resolution=8)
    messages = " ".join(str(w.message) for w in caught)
    assert "corrupt.jpg" in messages and "empty.png" in messages
    assert len(dataset) == 1 and dataset.num_skipped == 2


def test_corrupt_file_is_an_error_when_strict(tmp_path):
    random_rgb((20, 20), 0).save(tmp_path / "good.png")
    (tmp_path / "corrupt.jpg").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="corrupt.jpg"):
        image_folder_dataset(tmp_path, resolution=8, strict=True)


def test_a_file_damaged_past_its_header_is_skipped_when_loaded(tmp_path):
    """A damaged JPEG with a valid header and end marker fails only when decoded, mid-training."""
    random_rgb((64, 64), 0).save(tmp_path / "a_damaged.jpg", quality=95)
    damage_past_the_header(tmp_path / "a_damaged.jpg")
    random_rgb((64, 64), 1).save(tmp_path / "b_good.jpg")
    dataset = image_folder_dataset(tmp_path, resolution=8)
    assert len(dataset) == 2  # passes the header scan
    with pytest.warns(UnreadableImageWarning, match="a_damaged.jpg"):
        item = dataset[0]["image"]
    assert torch.equal(item, dataset[1]["image"])  # the other image stands in (of two, the next)
    assert dataset.num_skipped == 1
    strict = image_folder_dataset(tmp_path, resolution=8, strict=True)
    with pytest.raises(ImageReadError, match="a_damaged.jpg"):
        strict[0]


def test_a_data_folder_gone_mid_run_ends_the_reading_at_once_naming_it(tmp_path):
    # each of its files was skipped and named in turn: 202,599 warnings for CelebA moved away, none
    # of which said the folder was gone
    folder = tmp_path / "faces"
    folder.mkdir()
    for index in range(4):
        random_rgb((16, 16), index).save(folder / f"{index}.png")
    dataset = image_folder_dataset(folder, resolution=8)
    folder.rename(tmp_path / "moved")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no file skipped and named)
        with pytest.raises(ImageFolderGone, match=f"its folder '{folder}' is gone \\(moved, renamed or unmounted"):
            dataset[0]
    (tmp_path / "moved").rename(folder)
    (folder / "1.png").unlink()  # one file gone from a folder still there: skipped, as before
    with pytest.warns(UnreadableImageWarning, match="no such file"):
        dataset[1]


def test_a_data_folder_emptied_mid_run_ends_the_reading_at_once_naming_it(tmp_path):
    """The folder still there, its images moved out: each of 9,000 files was skipped and named in
    turn, 9,057 warnings before the run stopped. A block of neighbours deleted from a folder that
    holds images yet is skipped file by file, as any file removed mid-run."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for index in range(24):
        random_rgb((16, 16), index).save(folder / f"{index:02d}.png")
    dataset = image_folder_dataset(folder, resolution=8)
    for index in range(2, 10):  # (a block of neighbours deleted, `rm img_0*`: each skipped)
        (folder / f"{index:02d}.png").unlink()
    with pytest.warns(UnreadableImageWarning) as said:
        for index in range(2, 10):
            dataset[index]
    assert len(said) == 8 and dataset.num_skipped == 8
    for index in range(10, 24):
        (folder / f"{index:02d}.png").unlink()
    for index in range(2):  # (moved out: the folder holds no image now)
        (folder / f"{index:02d}.png").rename(tmp_path / f"{index:02d}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no file skipped and named)
        with pytest.raises(ImageFolderGone, match=f"9 listed image files are gone from '{folder}', which holds no "
                                                  "image now \\('12.png' among them; moved, renamed or deleted"):
            dataset[12]
    (tmp_path / "00.png").rename(folder / "00.png")  # one back: the files gone are skipped, each named, until it
    with pytest.warns(UnreadableImageWarning, match="12.png"):
        assert torch.equal(dataset[12]["image"], dataset[0]["image"])


def test_a_folder_emptied_of_its_photos_but_not_of_macos_dot_underscore_files_still_ends_the_reading(tmp_path):
    """A drive once used on a Mac holds `._photo.jpg` (4 KB of metadata, left out of the listing)
    beside each photo, and `mv faces/*.png` leaves them: they counted as images still there, so
    the run trained on stand-ins for the folder, each file skipped and named."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for index in range(10):
        random_rgb((16, 16), index).save(folder / f"{index:02d}.png")
        (folder / f"._{index:02d}.png").write_bytes(b"\x00\x05\x16\x07" + bytes(4092))
    dataset = image_folder_dataset(folder, resolution=8)
    assert len(dataset) == 10
    for index in range(10):
        (folder / f"{index:02d}.png").rename(tmp_path / f"{index:02d}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImageFolderGone, match=f"gone from '{folder}', which holds no image now"):
            dataset[0]


def test_the_files_gone_from_an_emptied_folder_are_counted_across_the_loader_workers(tmp_path):
    """Each worker counted its own: 2 workers named 14 files of a folder emptied before the stop (8
    workers, up to 56), and a folder of 10 files emptied under 2 workers might never stop the run."""
    import multiprocessing

    from gan.data.decode import ImageFileGone
    from gan.data.image_files import SkipUnreadable

    emptied = tmp_path / "b"
    emptied.mkdir()
    skip = SkipUnreadable(strict=False, count=100)

    def load(candidate, asked):  # (the file asked for is gone, any stand-in reads)
        if candidate != asked:
            return candidate
        gone = ImageFileGone(f"cannot read image '{emptied / f'{asked}.png'}': no such file")
        gone.path = str(emptied / f"{asked}.png")
        raise gone

    def read(indices):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for index in indices:
                skip(functools.partial(load, asked=index), index, 100)

    worker = multiprocessing.get_context("fork").Process(target=read, args=(range(4),))  # (a loader worker)
    worker.start()
    worker.join()
    assert worker.exitcode == 0
    read(range(4, 7))
    with pytest.raises(ImageFolderGone, match=f"8 listed image files are gone from '{emptied}', which holds no image"):
        read([7])


def test_a_photo_deleted_from_a_folder_of_one_photo_is_skipped_not_taken_for_the_data_gone(tmp_path):
    """LFW's layout, a folder per person, most holding one photo: one photo deleted mid-run stopped
    the run, as if the data set had been moved away."""
    people = tmp_path / "lfw"
    for index in range(12):
        (people / f"person{index}").mkdir(parents=True)
        random_rgb((16, 16), index).save(people / f"person{index}" / f"{index}.png")
    dataset = image_folder_dataset(people, resolution=8)
    (people / "person2" / "2.png").unlink()
    with pytest.warns(UnreadableImageWarning, match="2.png"):
        dataset[dataset.paths.index(people / "person2" / "2.png")]
    assert dataset.num_skipped == 1


def test_a_block_of_damaged_files_is_stood_in_for_by_as_many_images_each_decoded_once(tmp_path, monkeypatch):
    """A run of neighbours damaged inside (a bad disk range, a broken copy of one folder) had the next
    readable image stand in for each: 501 of 3,000 training images were one face. And each try of the
    block's files decoded every damaged file after it again: 54 s to build the cache of 3,000 files
    with 1,000 damaged, 0.6 s with none, and training read 6x slower."""
    from gan.data import image_files

    folder = tmp_path / "faces"
    folder.mkdir()
    for index in range(40):
        random_rgb((16, 16), index).save(folder / f"{index:02d}.png")
    block = range(10, 20)
    for index in block:
        damage_past_the_header(folder / f"{index:02d}.png")
    dataset = image_folder_dataset(folder, resolution=16)
    decodes, read_rgb = [], image_files.read_rgb
    monkeypatch.setattr(image_files, "read_rgb", lambda path: decodes.append(Path(path).name) or read_rgb(path))
    with pytest.warns(UnreadableImageWarning) as said:
        first = [dataset[index]["image"] for index in range(40)]
    assert len(said) == len(block) and dataset.num_skipped == len(block)
    assert all(decodes.count(f"{index:02d}.png") == 1 for index in block), decodes
    readable = {index: first[index] for index in range(40) if index not in block}
    stand_ins = [next(index for index, image in readable.items() if torch.equal(image, first[damaged]))
                 for damaged in block]
    assert len(set(stand_ins)) == len(block), stand_ins  # (each image of the set counts at most twice)
    decodes.clear()
    again = [dataset[index]["image"] for index in range(40)]  # the same stand-ins, the damaged files not read
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert len(decodes) == 40 and not {f"{index:02d}.png" for index in block} & set(decodes)


def test_a_process_out_of_open_files_skips_no_image_as_unreadable(tmp_path):
    """`ulimit -n 44` with 8 loader workers: every healthy image failed to open ("[Errno 24] Too many open
    files") and was skipped as unreadable, with a warning each (9,000), or, with a little more room, left
    out of training in silence. No file is at fault: reading stops, naming the limit (a real limit here,
    set below the lowest free file descriptor in a process of its own)."""
    import subprocess
    import sys

    for index in range(3):
        random_rgb((16, 16), index).save(tmp_path / f"{index}.png")
    code = f"""
import os, resource, warnings
from gan.data.decode import check_header
from gan.data.image_files import image_folder_dataset
dataset = image_folder_dataset({str(tmp_path)!r}, resolution=8)
lowest_free = os.dup(0)
os.close(lowest_free)
resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for read in (lambda: dataset[0], lambda: check_header(dataset.paths[1])):
        try:
            print("read:", read())
        except OSError as error:
            print(type(error).__name__, error)
print("limit", lowest_free, "skipped", dataset.num_skipped, "warnings", len(caught))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    said = result.stdout.splitlines()
    assert len(said) == 3, result.stdout + result.stderr
    limit = int(said[2].split()[1])
    for line, path in zip(said, [tmp_path / "0.png", tmp_path / "1.png"]):
        assert line == (f"ProcessLimitError cannot open image '{path}': Too many open files: this process's open-file "
                        f"limit ({limit}, `ulimit -n`) is reached, no fault of the file"), result.stdout
    assert said[2] == f"limit {limit} skipped 0 warnings 0"


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_file_cut_short_is_skipped_at_the_scan_so_max_images_and_the_count_leave_it_out(tmp_path, suffix):
    """Its header reads, so it used to count among data.max_images and the training images, then
    fail when decoded: its neighbour stood in, and was drawn twice as often."""
    for index in range(4):
        random_rgb((64, 64), index).save(tmp_path / f"{index}{suffix}")
    data = (tmp_path / f"1{suffix}").read_bytes()
    (tmp_path / f"1{suffix}").write_bytes(data[: len(data) // 3])
    with pytest.warns(UnreadableImageWarning, match=rf"skipping unreadable image '.*1\{suffix}': cut short: "):
        dataset = image_folder_dataset(tmp_path, resolution=8, max_images=3)
    assert [path.name for path in dataset.paths] == [f"0{suffix}", f"2{suffix}", f"3{suffix}"]
    with pytest.raises(ImageReadError, match=rf"1\{suffix}': cut short"):
        image_folder_dataset(tmp_path, resolution=8, strict=True)
    padded = tmp_path / f"0{suffix}"  # bytes after the end marker (a phone's trailer, a video) are no damage
    padded.write_bytes(padded.read_bytes() + bytes(5000))
    assert check_header(padded) is None


@pytest.mark.parametrize("image_format", ["BMP", "PPM", "GIF", "TIFF", "WEBP"])
def test_other_formats_cut_short_are_found_at_the_scan_too(tmp_path, image_format):
    """They were checked for JPEG and PNG alone: a BMP cut short counted among data.max_images,
    and its neighbour stood in for it."""
    for index in range(4):
        random_rgb((64, 64), index).save(tmp_path / f"{index}.{image_format.lower()}", image_format)
    whole = tmp_path / f"1.{image_format.lower()}"
    assert check_header(whole) is None
    whole.write_bytes(whole.read_bytes()[:len(whole.read_bytes()) * 4 // 5])
    assert check_header(whole) is not None
    with pytest.warns(UnreadableImageWarning, match=rf"skipping unreadable image '.*1\.{image_format.lower()}'"):
        dataset = image_folder_dataset(tmp_path, resolution=8, max_images=3)
    assert [path.stem for path in dataset.paths] == ["0", "2", "3"]


def test_a_jpeg_with_data_after_its_end_is_checked_without_decoding_it(tmp_path, monkeypatch):
    """A phone's trailer or appended video put the end marker far from the end: each such photo was
    decoded whole at every scan (150 ms for a 12-megapixel one, against 0.1 ms)."""
    from PIL import ImageFile

    photo = tmp_path / "photo.jpg"
    random_rgb((64, 64), 0).save(photo, exif=Image.Exif().tobytes())  # (a thumbnail's markers come first)
    photo.write_bytes(photo.read_bytes() + os.urandom(20000))

    def decode(image):
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)
    assert check_header(photo) is None


def test_a_phone_photo_with_a_second_picture_cut_short_is_found(tmp_path):
    """Pillow calls such a JPEG 'MPO': it was not checked."""
    buffer = io.BytesIO()
    random_rgb((64, 64), 0).save(buffer, "MPO", save_all=True, append_images=[random_rgb((64, 64), 1)])
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 4])
    assert check_header(photo).startswith("cut short: ")


def test_a_file_met_by_several_loader_workers_is_counted_once(tmp_path):
    for index in range(6):
        random_rgb((16, 16), index).save(tmp_path / f"{index}.png")
    damage_past_the_header(tmp_path / "2.png")  # passes the header scan, fails to decode
    dataset = image_folder_dataset(tmp_path, resolution=8)
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):  # each epoch's new workers meet it
            assert len(list(loader)) == 6
    assert dataset.num_skipped == 1  # not once per process that met it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset[2]
    assert not caught  # the main process knows it was warned of already


def test_empty_folder_and_missing_folder_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no images found under .*looked for .jpg"):
        image_folder_dataset(tmp_path, resolution=8)
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no images found"):
        image_folder_dataset(tmp_path, resolution=8)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_folder_dataset(tmp_path / "missing", resolution=8)
    (tmp_path / "only_bad.png").write_bytes(b"nope")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImageReadError, match="none of the 1 image files"):
            image_folder_dataset(tmp_path, resolution=8)


def test_empty_root_in_config_is_a_config_error():
    with pytest.raises(ConfigError, match="data.root is empty"):
        build_dataset(load_config(None, ["data.dataset=folder"]).data)


def _celeba_tree(tmp_path, count=6):
    image_dir = tmp_path / "celeba" / "img_align_celeba"
    image_dir.mkdir(parents=True)
    for index in range(1, count + 1):
        image = Image.new("RGB", (178, 218), (0, 0, 255))  # blue border ...
        image.paste((255, 0, 0), (15, 35, 163, 183))  # ... around the centred 148x148 crop: red
        image.save(image_dir / f"{index:06d}.jpg", quality=98)
    return image_dir


def test_celeba_layout_crops_the_centre_148_square(tmp_path):
    image_dir = _celeba_tree(tmp_path)
    for root in (image_dir, image_dir.parent):  # the folder itself or its parent
        dataset = celeba_dataset(root, resolution=32)
        assert len(dataset) == 6
        pixels = dataset[0]["image"]
        red = torch.tensor([1.0, -1.0, -1.0])[:, None, None]
        # only the red square survives the crop (the outermost pixels blend: bicubic support, JPEG)
        assert (pixels[:, 1:-1, 1:-1] - red).abs().max() < 0.1
    wider = celeba_dataset(image_dir, resolution=32, crop=178)[0]["image"]
    assert wider[2, 16, 0] > 0.5  # a wider crop shows the blue border


def test_photos_not_shaped_as_aligned_faces_are_warned_of_as_the_celeba_crop_misses_their_faces(tmp_path):
    # CelebA's in-the-wild img_celeba/ (faces anywhere in photos of every size) trained under the aligned
    # faces' crop without a word
    wild = tmp_path / "img_celeba"
    wild.mkdir()
    for index, size in enumerate([(500, 375), (500, 500), (178, 218), (640, 480)], 1):
        random_rgb(size, index).save(wild / f"{index:06d}.jpg")
    with pytest.warns(UserWarning, match=r"3 of the first 4 images in '.*img_celeba' are not shaped as CelebA's "
                                         r"aligned faces \(178x218, or a copy scaled from it; '000001.jpg' is 500x375\)"):
        celeba_dataset(wild, resolution=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the aligned faces, and their half-size copy (89x109): nothing to say
        celeba_dataset(_celeba_tree(tmp_path), resolution=32)
        half = tmp_path / "half" / "img_align_celeba"
        half.mkdir(parents=True)
        random_rgb((89, 109), 0).save(half / "000001.jpg")
        celeba_dataset(half, resolution=32)


def test_a_folder_holding_the_official_png_copy_alone_points_to_it(tmp_path):
    # CelebA/Img holding img_align_celeba_png/ alone was told to use the folder data set, which loses
    # the faces' crop and data.split
    png = tmp_path / "CelebA" / "Img" / "img_align_celeba_png"
    png.mkdir(parents=True)
    random_rgb((178, 218), 0).save(png / "000001.png")
    for root in (tmp_path / "CelebA" / "Img", tmp_path / "CelebA"):
        with pytest.raises(FileNotFoundError, match=re.escape(f"set data.root to '{png}'")):
            celeba_dataset(root, resolution=32)


def test_celeba_partition_file_selects_a_split(tmp_path):
    image_dir = _celeba_tree(tmp_path)
    with pytest.raises(FileNotFoundError, match="list_eval_partition.txt"):
        celeba_dataset(image_dir, resolution=32, split="train")
    lines = [f"{i:06d}.jpg {0 if i <= 3 else 1 if i <= 5 else 2}" for i in range(1, 7)]
    (image_dir.parent / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    sizes = {split: len(celeba_dataset(image_dir, 32, split=split)) for split in ("train", "valid", "test", "all")}
    assert sizes == {"train": 3, "valid": 2, "test": 1, "all": 6}


def test_a_face_in_two_files_of_one_name_is_warned_of(tmp_path):
    # the official .jpg faces with the .png copy beside them: each face trained twice, without a word
    image_dir = _celeba_tree(tmp_path)
    for jpg in sorted(image_dir.glob("*.jpg"))[:2]:
        Image.open(jpg).save(jpg.with_suffix(".png"))
    with pytest.warns(UserWarning, match=r"2 face\(s\) in '.*img_align_celeba' are there in two files of one name "
                                         r"\(000001, 000002, e.g. .jpg and .png\): each trains twice"):
        assert len(celeba_dataset(image_dir, resolution=32)) == 8
    for png in image_dir.glob("*.png"):
        png.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        celeba_dataset(image_dir, resolution=32)


def test_celeba_faces_one_level_deeper_are_pointed_to(tmp_path):
    # Google Drive's CelebA/Img/img_align_celeba/ given as CelebA/: "no images found", nothing more
    drive = tmp_path / "CelebA"
    image_dir = _celeba_tree(drive / "Img")
    with pytest.raises(FileNotFoundError, match=rf"no images found in '{drive}' .*: CelebA's faces are read from "
                                                rf"img_align_celeba/ \(or the folder holding it\), not searched for in "
                                                rf"subfolders; set data.root to '{image_dir}'"):
        celeba_dataset(drive, resolution=32)
    (tmp_path / "faces" / "sub").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "faces" / "sub" / "0.png")
    with pytest.raises(FileNotFoundError, match=r"for images in subfolders, set data.dataset = \"folder\""):
        celeba_dataset(tmp_path / "faces", resolution=32)


def test_celeba_given_as_the_folder_run_from_finds_what_lies_beside_it(tmp_path, monkeypatch):
    # data.root=. from inside img_align_celeba/: the partition file and the unpack record were looked for
    # in it ('.'.parent is '.'), so data.split failed and a partial unpack trained without a word
    import json

    image_dir = _celeba_tree(tmp_path)
    lines = [f"{i:06d}.jpg {0 if i <= 3 else 1}" for i in range(1, 7)]
    (image_dir.parent / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    (image_dir.parent / "prepare_celeba.json").write_text(json.dumps({"images": 9, "complete": False}))
    monkeypatch.chdir(image_dir)
    with pytest.warns(UserWarning, match="did not finish"):
        assert len(celeba_dataset(".", 32, split="valid")) == 3
    # Google Drive's layout: CelebA/Img/img_align_celeba/ and CelebA/Eval/list_eval_partition.txt
    drive = tmp_path / "CelebA"
    (drive / "Img").mkdir(parents=True)
    (drive / "Eval").mkdir()
    image_dir.rename(drive / "Img" / "img_align_celeba")
    (image_dir.parent / "list_eval_partition.txt").rename(drive / "Eval" / "list_eval_partition.txt")
    assert len(celeba_dataset(drive / "Img", 32, split="train")) == 3
    monkeypatch.chdir(drive / "Img")  # (relative, and through a link to the folder)
    assert len(celeba_dataset("img_align_celeba", 32, split="train")) == 3
    (tmp_path / "linked").symlink_to(drive / "Img" / "img_align_celeba")
    assert len(celeba_dataset(tmp_path / "linked", 32, split="train")) == 3


def test_images_the_partition_file_does_not_list_are_warned_of_and_a_utf16_file_is_read(tmp_path):
    # Images missing from the partition file belonged to no split, without a word; a partition file
    # saved as UTF-16 (Notepad's "Unicode") was refused as "not text".
    image_dir = _celeba_tree(tmp_path)
    partition = image_dir.parent / "list_eval_partition.txt"
    partition.write_text("\r\n".join(f"{i:06d}.jpg {0 if i <= 2 else 1}" for i in range(1, 5)) + "\r\n\r\n",
                         encoding="utf-16")
    with pytest.warns(UserWarning, match=r"2 of the 6 images in .* are not listed in .*list_eval_partition.txt', so "
                                         r"no data.split holds them \(000005.jpg, 000006.jpg\)"):
        assert len(celeba_dataset(image_dir, 32, split="train")) == 2
    for encoding in ("utf-16-le", "utf-16-be"):  # (without the byte-order mark: an error of NUL bytes)
        partition.write_text("\n".join(f"{i:06d}.jpg {0 if i <= 3 else 1}" for i in range(1, 7)) + "\n",
                             encoding=encoding)
        assert len(celeba_dataset(image_dir, 32, split="train")) == 3
    partition.write_text("000001.jpg 0\n000002.jpg\x01 9\n")
    with pytest.raises(ValueError, match=r"list_eval_partition.txt:2: expected '<file name> <0\|1\|2>', got "
                                         r"'000002.jpg\\x01 9'"):
        celeba_dataset(image_dir, 32, split="train")


def test_a_changed_partition_file_changes_the_datas_fingerprint_and_a_doubled_entry_is_refused(tmp_path):
    """The metrics' reference statistics are keyed by the fingerprint: after the split was moved, SWD
    was scored against the old split's cached statistics."""
    import os

    from gan.core.config import DataConfig
    from gan.data import source_fingerprint

    image_dir = _celeba_tree(tmp_path)
    partition = image_dir.parent / "list_eval_partition.txt"
    partition.write_text("".join(f"{i:06d}.jpg {0 if i <= 3 else 1}\n" for i in range(1, 7)))
    config = DataConfig(dataset="celeba", root=str(image_dir), split="train", resolution=32)
    before = source_fingerprint(config)
    partition.write_text("".join(f"{i:06d}.jpg {0 if i <= 5 else 1}\n" for i in range(1, 7)))
    os.utime(partition, ns=(0, 0))  # (the change time still moves)
    assert source_fingerprint(config) != before
    assert len(celeba_dataset(image_dir, 32, split="train")) == 5
    partition.write_text("000001.jpg 0\n000002.jpg 0\n000001.jpg 2\n")
    with pytest.raises(ValueError, match=r"list_eval_partition.txt:3: '000001.jpg' is listed again, in another "
                                         r"partition \(2, after 0\)"):
        celeba_dataset(image_dir, 32, split="train")


def test_celeba_named_by_either_folder_shares_one_cache_and_one_set_of_reference_statistics(tmp_path):
    # data.root may name img_align_celeba/ or the folder holding it: the two spellings built two caches
    # of the same images (gigabytes at full size) and scored against two copies of the statistics
    from gan.core.config import DataConfig
    from gan.data import data_identity

    image_dir = _celeba_tree(tmp_path)
    kaggle = tmp_path / "archive"
    (kaggle / "img_align_celeba").mkdir(parents=True)
    (kaggle / "img_align_celeba" / "img_align_celeba").symlink_to(image_dir)
    identities = [data_identity(DataConfig(dataset="celeba", root=str(root), resolution=32))
                  for root in (image_dir, image_dir.parent, kaggle, kaggle / "img_align_celeba")]
    assert all(identity == identities[0] for identity in identities), identities
    assert identities[0]["root"] == str(image_dir.resolve())
    other = data_identity(DataConfig(dataset="folder", root=str(image_dir.parent), resolution=32))
    assert other["root"] == str(image_dir.parent.resolve())  # (a folder of images is read as named)
    # the reference statistics' key reads the files the loader reads: not a sibling folder's beside it
    from gan.data import source_fingerprint

    (image_dir.parent / "extra").mkdir()
    random_rgb((40, 40), 3).save(image_dir.parent / "extra" / "other.jpg")
    fingerprints = {source_fingerprint(DataConfig(dataset="celeba", root=str(root), resolution=32))
                    for root in (image_dir, image_dir.parent, kaggle)}
    assert len(fingerprints) == 1


def test_kaggles_copy_of_celeba_reads_as_the_official_one(tmp_path):
    """Kaggle's CelebA unpacks to archive/img_align_celeba/img_align_celeba/ with the partition as
    list_eval_partition.csv (a header, then `000001.jpg,0`) beside the outer folder."""
    archive = tmp_path / "archive"
    archive.mkdir()
    _celeba_tree(tmp_path).parent.rename(archive / "img_align_celeba")
    inner = archive / "img_align_celeba" / "img_align_celeba"
    (archive / "list_eval_partition.csv").write_text(
        "image_id,partition\n" + "".join(f"{i:06d}.jpg,{0 if i <= 4 else 2}\n" for i in range(1, 7)))
    for root in (archive, archive / "img_align_celeba", inner):
        sizes = {split: len(celeba_dataset(root, 32, split=split)) for split in ("train", "test", "all")}
        assert sizes == {"train": 4, "test": 2, "all": 6}, root
    for image in inner.glob("*.jpg"):  # the official PNG copy keeps the partition file's .jpg names
        Image.open(image).save(image.with_suffix(".png"))
        image.unlink()
    assert len(celeba_dataset(archive, 32, split="train")) == 4


def test_real_celeba_faces_through_the_celeba_loader(shared_data):
    """64 real aligned faces (stored at 89x109, half the official size)."""
    dataset = celeba_dataset(shared_data / "faces" / "img_align_celeba", resolution=64, max_images=64)
    assert len(dataset) == 64 and dataset.paths[0].name == "000001.jpg"
    images = torch.stack([dataset[i]["image"] for i in range(64)])
    assert images.shape == (64, 3, 64, 64)
    assert images.min() >= -1 and images.max() <= 1
    assert images.std() > 0.2  # real pictures, not a constant
    assert (images[0] - images[1]).abs().mean() > 0.1  # distinct faces
    assert dataset.num_skipped == 0


def test_horizontal_flip_follows_the_augmentation_seed(tmp_path):
    random_rgb((16, 16), 0).save(tmp_path / "x.png")
    dataset = image_folder_dataset(tmp_path, resolution=16, hflip=True)
    plain = image_folder_dataset(tmp_path, resolution=16)[0]["image"]
    flips = [torch.equal(dataset[(0, seed)]["image"], plain.flip(-1)) for seed in range(40)]
    assert 5 < sum(flips) < 35  # about half are flipped ...
    # ... and reproducibly
    assert all(torch.equal(dataset[(0, seed)]["image"], dataset[(0, seed)]["image"]) for seed in range(5))


def test_synthetic_faces_are_deterministic_and_varied():
    dataset = SyntheticFaces(32, size=10)
    assert torch.equal(dataset[3]["image"], SyntheticFaces(32, size=10)[3]["image"])
    assert not torch.equal(dataset[3]["image"], dataset[4]["image"])
    assert dataset[0]["image"].shape == (3, 32, 32)


def test_sampler_resumes_mid_stream_and_crosses_epochs():
    stream = ResumableSampler(size=7, seed=3)
    first = [item for item, _ in zip(stream, range(30))]
    assert sorted(index for index, _ in first[:7]) == list(range(7))  # an epoch is a permutation
    assert [i for i, _ in first[:7]] != [i for i, _ in first[7:14]]  # reshuffled each epoch
    resumed = [item for item, _ in zip(ResumableSampler(size=7, seed=3, start=11), range(19))]
    assert resumed == first[11:]


def test_batches_with_workers_equal_batches_without():
    dataset = SyntheticFaces(8, size=20, hflip=True)
    in_process = batches(dataset, 4, seed=1, start_sample=8, num_workers=0)
    with_workers = batches(dataset, 4, seed=1, start_sample=8, num_workers=2)
    for _ in range(6):
        assert torch.equal(next(in_process)["image"], next(with_workers)["image"])


@pytest.mark.skipif(not hasattr(os, "setsid"), reason="process groups are POSIX")
def test_loader_workers_are_out_of_reach_of_a_signal_to_the_trainers_process_group():
    """Ctrl-C reaches every process of the group, and a scheduler's SIGTERM every process of the job
    (SLURM's); the trainer still needs batches to finish its step and save, so its workers leave the
    group and ignore every stop signal (they ignored SIGINT alone: SIGTERM killed them, and the run
    ended as a dead worker, exit 1, often without its checkpoint)."""
    from gan.core.processes import STOP_SIGNALS

    loader = batches(SyntheticFaces(16, size=20), 4, seed=1, start_sample=0, num_workers=2)
    next(loader), next(loader)  # batches come from the workers in turn: both have started
    workers = list(loader._workers)
    for worker in workers:
        assert os.getpgid(worker.pid) != os.getpgrp()
        for signum in STOP_SIGNALS:
            os.kill(worker.pid, signum)
    time.sleep(0.5)
    assert all(worker.is_alive() for worker in workers)
    for _ in range(8):
        assert next(loader)["image"].shape[0] == 4
    loader._shutdown_workers()  # as the trainer's exit does: each is sent the end of its batches
    assert not any(worker.is_alive() for worker in workers)


def test_a_process_leaving_a_loader_running_still_ends():
    """multiprocessing's exit ends the workers of a loader never shut down with SIGTERM, then waits
    for them: workers that ignored SIGTERM kept the process from ever ending (the test run hung at
    its exit). They end WORKER_SIGTERM_GRACE_S after it."""
    import subprocess
    import sys

    from gan.data.sampling import WORKER_SIGTERM_GRACE_S

    script = ("from gan.data.sampling import batches\nfrom gan.data.synthetic import SyntheticFaces\n"
              "loader = batches(SyntheticFaces(16, size=20), 4, seed=1, start_sample=0, num_workers=2)\n"
              "next(loader), next(loader)\nprint('left running', flush=True)\n")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=WORKER_SIGTERM_GRACE_S + 60)
    assert result.returncode == 0 and "left running" in result.stdout, result.stderr
    assert time.monotonic() - started < WORKER_SIGTERM_GRACE_S + 50


def test_run_directories_inside_the_data_folder_are_left_out_of_its_images(tmp_path):
    """`--out` inside data.root: a resumed run (and the metrics' reference set) used to count the
    sample grids of runs there as training images."""
    from conftest import TINY

    from gan.data.decode import find_images
    from gan.training.loop import train

    faces = tmp_path / "faces"
    faces.mkdir()
    for index in range(8):
        random_rgb((20, 20), index).save(faces / f"{index}.png")
    config = load_config(None, [*TINY, "data.dataset=folder", f"data.root={faces}", "train.steps=2"])
    train(config, faces / "runs" / "one", torch.device("cpu"))
    assert list((faces / "runs" / "one" / "samples").glob("*.png"))  # a grid a scan would find
    with pytest.warns(UserWarning, match=r"left out 1 run directory of gan under .*runs/one\): their sample grids"):
        assert find_images(faces) == sorted(faces.glob("*.png"))
    (faces / "album").mkdir()  # a folder with a config.toml of its own but no run lock is data
    random_rgb((20, 20), 9).save(faces / "album" / "9.png")
    (faces / "album" / "config.toml").write_text("")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert faces / "album" / "9.png" in find_images(faces)


def test_a_folder_that_cannot_be_listed_is_said_not_passed_over(tmp_path, monkeypatch):
    """os.walk passes over a folder it cannot list (no read permission): its images left the data
    set without a word, and a root that cannot be listed read as "no images found"."""
    from gan.data.decode import ImageReadError, find_images

    for folder in ("ok", "locked"):
        (tmp_path / folder).mkdir()
        random_rgb((8, 8), 0).save(tmp_path / folder / "a.png")
    scandir = os.scandir

    def refusing(path="."):  # (root reads past permission bits, so the refusal is played here)
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    with pytest.warns(UserWarning, match=r"left out 1 folder\(s\) under .* that cannot be listed \(Permission "
                                         r"denied\), with any images in them: '.*locked'"):
        assert find_images(tmp_path) == [tmp_path / "ok" / "a.png"]
    with pytest.raises(ImageReadError, match=r"image folder '.*locked' cannot be listed: Permission denied"):
        find_images(tmp_path / "locked")


def test_max_images_counts_images_that_can_be_read(tmp_path):
    """The first N files were taken before the unreadable ones were dropped: data.max_images = 4 over
    a folder whose second file is empty trained on 3 images."""
    from gan.data.image_files import image_folder_dataset
    from gan.data.super_resolution import Degradation, super_resolution_dataset

    for index in range(6):
        random_rgb((40, 40), index).save(tmp_path / f"{index}.png")
    (tmp_path / "1.png").write_bytes(b"")  # unreadable
    random_rgb((8, 8), 9).save(tmp_path / "2.png")  # readable, but smaller than an SR training crop
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        folder = image_folder_dataset(tmp_path, 16, max_images=4)
    assert [path.name for path in folder.paths] == ["0.png", "2.png", "3.png", "4.png"]
    with pytest.warns(UserWarning):
        sr = super_resolution_dataset(tmp_path, Degradation(4), 32, max_images=3)
    assert len(sr) == 3  # 0, 3 and 4: neither the empty file nor the image smaller than the crop counts


def test_unpaired_validation_with_a_root_and_b_root_is_held_out_or_said_not_to_be(tmp_path):
    """With data.a_root/b_root, previews and validation silently used the training folders (val_split
    ignored), and with a_root alone paired training A images with root's testB."""
    from gan.core.config import DataConfig
    from gan.data import build_dataset

    for folder in ("u/trainA", "u/trainB", "u/testA", "u/testB", "mine/A", "mine/B"):
        (tmp_path / folder).mkdir(parents=True)
        random_rgb((16, 16), 0).save(tmp_path / folder / "0.png")
    mine = {"a_root": str(tmp_path / "mine" / "A"), "b_root": str(tmp_path / "mine" / "B")}
    config = DataConfig(dataset="unpaired", root="", val_split="test", resolution=16, load_size=16, **mine)
    with pytest.warns(UserWarning, match=r"previews and validation use the training folders \(data.a_root"):
        validation = build_dataset(config, train=False)
    assert validation.a_paths[0].parent.name == "A"
    config = DataConfig(dataset="unpaired", root=str(tmp_path / "u"), split="train", val_split="test", resolution=16,
                        load_size=16, a_root=mine["a_root"])
    validation = build_dataset(config, train=False)
    assert (validation.a_paths[0].parent.name, validation.b_paths[0].parent.name) == ("testA", "testB")
    assert build_dataset(config, train=True).a_paths[0].parent.name == "A"
    # The held-out folders missing: named by the keys that place them, not by a_root/b_root, which do not.
    config = DataConfig(dataset="unpaired", root=str(tmp_path / "elsewhere"), val_split="test", resolution=16,
                        load_size=16, **mine)
    with pytest.raises(FileNotFoundError, match=r"testA' does not exist; it is set by data.root with data.val_split"):
        build_dataset(config, train=False)


def test_a_png_with_oversized_text_metadata_is_named_with_what_to_do(tmp_path):
    from PIL import PngImagePlugin

    from gan.data.decode import check_header

    info = PngImagePlugin.PngInfo()
    info.add_text("XML:com.adobe.xmp", "x" * 3_000_000, zip=True)  # unpacks to more than Pillow's 1 MB cap
    random_rgb((8, 8), 0).save(tmp_path / "xmp.png", pnginfo=info)
    assert "PNG text metadata (XMP, comments) is larger than the 1 MB Pillow reads; strip the metadata" in \
        check_header(tmp_path / "xmp.png")


def test_a_png_with_oversized_text_metadata_is_named_with_what_to_do_in_an_older_pillows_words(tmp_path, monkeypatch):
    """Pillow before 11 says only "Decompressed Data Too Large" of such a chunk: the file was skipped in those
    words, without the advice to strip its metadata."""
    from PIL import PngImagePlugin

    from gan.data.decode import check_header

    def older_pillows_refusal(data: bytes) -> bytes:  # (Pillow 10's, past MAX_TEXT_CHUNK)
        raise ValueError("Decompressed Data Too Large")

    info = PngImagePlugin.PngInfo()
    info.add_text("XML:com.adobe.xmp", "x" * 1000, zip=True)
    random_rgb((8, 8), 0).save(tmp_path / "xmp.png", pnginfo=info)
    monkeypatch.setattr(PngImagePlugin, "_safe_zlib_decompress", older_pillows_refusal)
    assert "PNG text metadata (XMP, comments) is larger than the 1 MB Pillow reads; strip the metadata" in \
        check_header(tmp_path / "xmp.png")


def test_unpaired_data_with_the_default_split_names_the_split_to_set(tmp_path):
    """It said only that '<root>/allA' does not exist."""
    from gan.core.config import DataConfig
    from gan.data import build_dataset

    for folder in ("trainA", "trainB"):
        (tmp_path / folder).mkdir()
        random_rgb((16, 16), 0).save(tmp_path / folder / "0.png")
    with pytest.raises(ConfigError, match=r"data.split = \"all\" names none \('.*allA' does not exist\): set "
                                          r"data.split \(CycleGAN's: \"train\"\)"):
        build_dataset(DataConfig(dataset="unpaired", root=str(tmp_path), split="all", resolution=16, load_size=16))
    assert len(build_dataset(DataConfig(dataset="unpaired", root=str(tmp_path), split="train", resolution=16,
                                        load_size=16))) == 1


def test_a_folder_key_that_names_a_file_is_named_in_the_error(tmp_path):
    from gan.core.config import DataConfig
    from gan.data import build_dataset

    image = tmp_path / "0.png"
    random_rgb((16, 16), 0).save(image)
    (tmp_path / "B").mkdir()
    random_rgb((16, 16), 1).save(tmp_path / "B" / "0.png")
    with pytest.raises(NotADirectoryError, match=r"0.png' is not a folder of images; it is set by data.a_root and "
                                                 r"data.b_root, which names a folder"):
        build_dataset(DataConfig(dataset="unpaired", a_root=str(image), b_root=str(tmp_path / "B"), resolution=16,
                                 load_size=16))
    with pytest.raises(NotADirectoryError, match=r"it is set by data.root, which names a folder. datasets/README.md "
                                                 r"says how to obtain each data set"):
        build_dataset(DataConfig(dataset="folder", root=str(image), resolution=16))


def test_a_folder_whose_images_none_can_be_read_names_the_key_that_set_it(tmp_path):
    from gan.core.config import DataConfig

    for folder in ("trainA", "trainB"):
        (tmp_path / folder).mkdir()
        random_rgb((16, 16), 0).save(tmp_path / folder / "0.png")
    (tmp_path / "trainB" / "0.png").write_bytes(b"not a png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImageReadError, match=r"none of the 1 image files of domain B in '.*trainB' could be read; "
                                                 r"the folder is set by data.root with data.split$"):
            build_dataset(DataConfig(dataset="unpaired", root=str(tmp_path), split="train", resolution=16,
                                     load_size=16))


def test_a_crop_smaller_than_the_resolution_is_warned_of_as_upsampled(tmp_path):
    """CelebA's half-size copies (89x109) hold a 74-px face crop: trained at 128 they were upsampled
    1.7x without a word, while datasets/prepare_celeba.py says they are too small for 128."""
    celeba = tmp_path / "img_align_celeba"
    celeba.mkdir()
    for index in range(1, 5):
        random_rgb((89, 109), index).save(celeba / f"{index:06d}.jpg")
    with pytest.warns(UserWarning, match=r"the faces' centred crop \(data.crop = 148 at CelebA's 178 px width, scaled to each file's\) is smaller than data.resolution "
                                         r"= 128 in every image \(smallest: 74 px, in the 89x109 '.*000001.jpg'\), so "
                                         r"they are upsampled, up to 1.7x"):
        celeba_dataset(celeba, 128)
    folder = tmp_path / "mixed"
    folder.mkdir()
    for index, size in enumerate([(64, 80), (50, 40), (70, 70)]):
        random_rgb(size, index).save(folder / f"{index}.png")
    # (each of the 3 headers read: "in 1 of 3 images sampled" said a sample)
    with pytest.warns(UserWarning, match=r"the images' centred square is smaller than data.resolution = 64 in 1 of 3 images "
                                         r"\(smallest: 40 px, in the 50x40 '.*1.png'\)"):
        image_folder_dataset(folder, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # large enough: no word
        celeba_dataset(celeba, 64)
        image_folder_dataset(folder, 32)


def test_the_upsampling_check_samples_at_random_so_a_pattern_of_sizes_cannot_hide_it(tmp_path):
    """Every third file large: a stride of 3 read only those, and 200 upsampled images went unsaid."""
    for index in range(300):
        Image.new("RGB", (40, 40) if index % 3 == 0 else (20, 20)).save(tmp_path / f"{index:03d}.png")
    with pytest.warns(UserWarning, match=r"the images' centred square is smaller than data.resolution = 32 in \d+ of 100 "
                                         r"images sampled \(smallest: 20 px"):
        image_folder_dataset(tmp_path, 32)


def test_a_celeba_split_with_no_images_names_data_split_and_the_splits_there_are(tmp_path):
    # It said the folder "is set by data.root (--set data.root=/path/to/folder)": the folder was fine
    from gan.core.config import DataConfig

    celeba = tmp_path / "img_align_celeba"
    celeba.mkdir()
    for index in range(1, 4):
        random_rgb((89, 109), index).save(celeba / f"{index:06d}.jpg")
    (tmp_path / "list_eval_partition.txt").write_text("".join(f"{index:06d}.jpg 0\n" for index in range(1, 4)))
    with pytest.raises(FileNotFoundError, match=r"data.split = 'valid' holds no images of '.*img_align_celeba' "
                                                r"\('.*list_eval_partition.txt' lists them under train\): set "
                                                r"data.split to 'train' or 'all'$"):
        build_dataset(DataConfig(dataset="celeba", root=str(tmp_path), split="valid", resolution=32))


def test_a_cached_celeba_run_with_another_crop_reads_its_own_crop_not_the_cache_of_the_first(tmp_path):
    # the crop decides the cached pixels: a cache keyed without it gave a run at data.crop = 178 the
    # faces cropped at 148, in silence
    from gan.core.config import DataConfig
    from gan.data import build_dataset, training_batches

    image_dir = _celeba_tree(tmp_path)  # red inside the centred 148 px square, blue around it
    reds = []
    for crop in (148, 178):
        config = DataConfig(dataset="celeba", root=str(image_dir), resolution=16, crop=crop, num_workers=0,
                            cache="mmap", cache_dir=str(tmp_path / "cache"), hflip=False)
        batch = next(training_batches(config, build_dataset(config), 2, 0, 0, torch.device("cpu")))["image"]
        reds.append(float(batch[:, 0].mean()))
        uncached = next(training_batches(replace(config, cache="off"), build_dataset(config), 2, 0, 0,
                                         torch.device("cpu")))["image"]
        assert torch.equal(batch, uncached), crop
    assert reds[0] > reds[1] + 0.2  # (at 178 the blue border is in the picture)


def test_an_images_augmentation_is_drawn_afresh_each_epoch():
    # (guards a mutation probe found open: seeds keyed by the image, not by its place in the stream,
    # gave each image the same flip every epoch, and resumes stayed exact)
    from gan.data.sampling import ResumableSampler

    drawn = list(itertools.islice(iter(ResumableSampler(8, seed=3)), 32))  # four epochs
    seeds_of = {}
    for index, seed in drawn:
        seeds_of.setdefault(index, []).append(seed)
    assert sorted(seeds_of) == list(range(8)) and all(len(set(seeds)) == 4 for seeds in seeds_of.values())


def test_a_nas_shares_thumbnails_and_recycle_bins_are_left_out_with_one_warning(tmp_path):
    """A Synology share of 200 photos trained on 900: three thumbnails of each photo in `@eaDir/<photo>/`
    (and each of those folders, named like its photo, warned of as an unreadable image), and the files
    deleted into `#recycle/` and Windows' `$RECYCLE.BIN/`."""
    from gan.data.decode import find_images

    share = tmp_path / "share"
    photos = [share / "2019" / f"img_{index}.png" for index in range(3)]
    for index, photo in enumerate(photos):
        photo.parent.mkdir(parents=True, exist_ok=True)
        random_rgb((16, 16), index).save(photo)
        thumbnails = share / "2019" / "@eaDir" / photo.name
        thumbnails.mkdir(parents=True)
        random_rgb((8, 8), index).save(thumbnails / "SYNOPHOTO_THUMB_S.png")
    for deleted in ("#recycle/old/a.png", "$RECYCLE.BIN/S-1-5-21/$R0AB12.png", "System Volume Information/x.png"):
        (share / deleted).parent.mkdir(parents=True)
        random_rgb((16, 16), 9).save(share / deleted)
    with pytest.warns(UnreadableImageWarning) as said:
        assert find_images(share) == photos
    (message,) = [str(warning.message) for warning in said]
    assert message.startswith(f"left out 4 system folder(s) under '{share}' (a NAS's thumbnails") and message.endswith("and 1 more")
    photos[0].parent.rename(share / "$Recycle.Bin")  # (a case Windows keeps too)
    with pytest.raises(FileNotFoundError, match="no images found"), pytest.warns(UnreadableImageWarning):
        find_images(share)


def test_an_evaluations_record_of_its_images_passes_over_the_thumbnails_a_nas_adds(tmp_path):
    """`gan eval` again on the same faces was refused ("files added, removed or changed since") once
    a Synology indexer had put thumbnails in `@eaDir/`, which no listing reads."""
    from gan.commands.eval import contents_digest

    faces = tmp_path / "faces"
    faces.mkdir()
    for index in range(3):
        random_rgb((16, 16), index).save(faces / f"{index}.png")
    before = contents_digest(faces)
    (faces / "@eaDir" / "0.png").mkdir(parents=True)
    random_rgb((8, 8), 0).save(faces / "@eaDir" / "0.png" / "SYNOPHOTO_THUMB_S.png")
    assert contents_digest(faces) == before
    run = faces / "runs" / "00000-other"  # (a run inside the data folder, writing its grids: no listing reads it)
    (run / "samples").mkdir(parents=True)
    (run / ".lock").touch()
    (run / "config.toml").write_text('recipe = "dcgan"\n')
    random_rgb((16, 16), 6).save(run / "samples" / "00000010-generator.png")
    assert contents_digest(faces) == before
    random_rgb((16, 16), 5).save(faces / "3.png")
    assert contents_digest(faces) != before
