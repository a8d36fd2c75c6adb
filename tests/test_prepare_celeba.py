"""datasets/prepare_celeba.py: unpacks CelebA's zip without replacing anything that differs, leaves
only whole files when stopped, and says "ready" only for a folder that is."""

import contextlib
import io
import runpy
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, random_rgb
from PIL import Image

from gan.core.processes import STOP_SIGNALS

SCRIPT = REPO / "datasets" / "prepare_celeba.py"
FACES = 12


def prepare(*args) -> subprocess.CompletedProcess:
    """`python datasets/prepare_celeba.py ARGS`, run as its `__main__` in this process: its exit code and what it
    wrote (a process of its own, torch imported again, took 2-3 s a call; the tests of what only a process of
    its own shows, a stop or a closed pipe, start one)."""
    argv, handlers = sys.argv, {number: signal.getsignal(number) for number in STOP_SIGNALS}
    stdout, stderr = io.StringIO(), io.StringIO()
    sys.argv = [str(SCRIPT), *map(str, args)]
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            runpy.run_path(str(SCRIPT), run_name="__main__")
        code = 0
    except SystemExit as exited:  # (a message is printed to stderr and exits 1, as Python does)
        code = exited.code if isinstance(exited.code, int) or exited.code is None else 1
        if isinstance(exited.code, str):
            print(exited.code, file=stderr)
    finally:
        sys.argv = argv
        for number, handler in handlers.items():  # (the script makes the signals of a stop stop it)
            signal.signal(number, handler)
    return subprocess.CompletedProcess(sys.argv, code or 0, stdout.getvalue(), stderr.getvalue())


def jpeg(size: tuple[int, int], seed: int) -> bytes:
    buffer = io.BytesIO()
    random_rgb(size, seed).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_zip(path: Path, size=(178, 218), seed=0, folder="img_align_celeba/", damaged: int | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zipped:
        for index in range(1, FACES + 1):
            data = jpeg(size, seed + index)
            zipped.writestr(f"{folder}{index:06d}.jpg", data)
    if damaged is not None:  # flip bytes inside one member's stored data: its CRC fails when read
        raw = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as zipped:
            info = zipped.getinfo(f"{folder}{damaged:06d}.jpg")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size // 2
        raw[start:start + 8] = bytes(8)
        path.write_bytes(bytes(raw))
    return path


def write_partition(path: Path, encoding="utf-8") -> Path:
    path.write_text("".join(f"{index:06d}.jpg {0 if index <= 8 else 1 if index <= 10 else 2}\n"
                            for index in range(1, FACES + 1)), encoding=encoding)
    return path


def test_unpacks_checks_and_suggests_the_config_then_a_rerun_keeps_what_is_there(tmp_path):
    archive, partition, out = write_zip(tmp_path / "celeba.zip"), write_partition(tmp_path / "p.txt"), tmp_path / "out"
    first = prepare("--zip", archive, "--partition", partition, "--out", out)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "partition: train 8, valid 2, test 2" in first.stdout
    assert f"ready: gan train experiments/dcgan_celeba128.toml --set data.root={out / 'img_align_celeba'}" in first.stdout
    assert len(list((out / "img_align_celeba").glob("*.jpg"))) == FACES
    record = out / "prepare_celeba.json"
    written = record.stat().st_mtime_ns, record.stat().st_ino
    again = prepare("--zip", archive, "--partition", partition, "--out", out)
    assert again.returncode == 0 and f"all {FACES} images of '{archive}' are in {out / 'img_align_celeba'} already" \
        in again.stdout, again.stdout + again.stderr
    # nothing to unpack, nothing written: a rerun on a folder made read-only since only checks it
    assert (record.stat().st_mtime_ns, record.stat().st_ino) == written
    (out / "img_align_celeba" / "000002.jpg").unlink()
    restored = prepare("--zip", archive, "--out", out)
    assert restored.returncode == 0 and f"unpacking 1 images to {out / 'img_align_celeba'} ({FACES - 1} already " \
        "there)" in restored.stdout, restored.stdout + restored.stderr


def test_files_that_differ_are_never_replaced(tmp_path):
    out = tmp_path / "out"
    assert prepare("--zip", write_zip(tmp_path / "full.zip"), "--out", out).returncode == 0
    before = {path.name: path.read_bytes() for path in (out / "img_align_celeba").iterdir()}
    half = prepare("--zip", write_zip(tmp_path / "half.zip", size=(89, 109), seed=100), "--out", out)
    assert half.returncode == 1 and "ready:" not in half.stdout
    assert half.stderr.strip().startswith(f"prepare_celeba: error: {FACES} file(s) in '{out}' differ from what would "
                                          "replace them (img_align_celeba/000001.jpg, ") and "nothing was written" in half.stderr
    assert {path.name: path.read_bytes() for path in (out / "img_align_celeba").iterdir()} == before
    (out / "list_eval_partition.txt").write_text("000001.jpg 0\n")
    other = prepare("--partition", write_partition(tmp_path / "p.txt"), "--out", out)
    assert other.returncode == 1 and "(list_eval_partition.txt)" in other.stderr
    assert (out / "list_eval_partition.txt").read_text() == "000001.jpg 0\n"


def test_a_damaged_zip_leaves_only_whole_files_and_the_check_says_it_did_not_finish(tmp_path):
    out = tmp_path / "out"
    damaged = prepare("--zip", write_zip(tmp_path / "bad.zip", damaged=6), "--out", out)
    assert damaged.returncode == 1 and "Traceback" not in damaged.stderr
    assert "could not unpack 'img_align_celeba/000006.jpg'" in damaged.stderr and "the 5 images" in damaged.stderr
    assert sorted(path.name for path in (out / "img_align_celeba").iterdir()) == [f"{i:06d}.jpg" for i in range(1, 6)]
    check = prepare("--out", out)  # the five whole files are no finished set
    assert check.returncode == 1 and "ready:" not in check.stdout
    assert "problem: an unpack into" in check.stdout and "did not finish" in check.stdout
    good = prepare("--zip", write_zip(tmp_path / "good.zip"), "--out", out)  # goes on from where it stopped
    assert good.returncode == 0 and f"unpacking {FACES - 5} images" in good.stdout, good.stdout + good.stderr


def test_the_check_finds_files_cut_short_and_mixed_sizes(tmp_path):
    out = tmp_path / "out"
    assert prepare("--zip", write_zip(tmp_path / "celeba.zip"), "--out", out).returncode == 0
    image_dir = out / "img_align_celeba"
    cut = image_dir / "000003.jpg"
    cut.write_bytes(cut.read_bytes()[:-2000])  # its header whole, its end missing
    (image_dir / "000004.jpg").write_bytes(jpeg((89, 109), 7))
    check = prepare("--out", out)
    assert check.returncode == 1 and "ready:" not in check.stdout
    assert "problem: 1 image(s) cannot be read: 000003.jpg (cut short: " in check.stdout
    assert f"problem: the images are of 2 sizes ({FACES - 2} at 178x218, 1 at 89x109)" in check.stdout
    # photos of many sizes (the in-the-wild img_celeba/, thousands of sizes) made a line of tens of KB
    for index in range(1, FACES + 1):
        (image_dir / f"{index:06d}.jpg").write_bytes(jpeg((150 + index, 200), index))
    check = prepare("--out", out)
    problem = next(line for line in check.stdout.splitlines() if "sizes" in line)
    assert problem == (f"problem: the images are of {FACES} sizes (1 at 151x200, 1 at 152x200, 1 at 153x200, 1 at "
                       f"154x200, 1 at 155x200 and {FACES - 5} more): photos, not the aligned faces (the in-the-wild "
                       "img_celeba/, say)?")


@pytest.mark.parametrize("form", ["utf-16", "kaggle-csv"])
def test_the_partition_forms_the_loader_reads_are_read_here_too(tmp_path, form):
    out = tmp_path / "out"
    if form == "utf-16":
        partition = write_partition(tmp_path / "p.txt", encoding="utf-16")
    else:
        partition = tmp_path / "list_eval_partition.csv"
        partition.write_text("image_id,partition\n" + "".join(
            f"{index:06d}.jpg,{0 if index <= 8 else 1 if index <= 10 else 2}\n" for index in range(1, FACES + 1)))
    result = prepare("--zip", write_zip(tmp_path / "celeba.zip", folder="img_align_celeba/img_align_celeba/"),
                     "--partition", partition, "--out", out)  # Kaggle's zip nests the folder
    assert result.returncode == 0 and "partition: train 8, valid 2, test 2" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("case", ["text named .zip", "no faces inside", "missing zip", "bad partition", "out is a file"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, case):
    out, archive, partition = tmp_path / "out", tmp_path / "celeba.zip", None
    if case == "text named .zip":
        archive.write_text("not a zip")
    elif case == "no faces inside":
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("readme.txt", "hello")
    elif case == "missing zip":
        archive = tmp_path / "absent.zip"
    else:
        write_zip(archive)
    if case == "bad partition":
        partition = tmp_path / "p.txt"
        partition.write_text("000001.jpg 7\n")
    if case == "out is a file":
        out.write_text("x")
    result = prepare("--zip", archive, *(["--partition", partition] if partition else []), "--out", out)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("prepare_celeba: error: "), result.stderr
    assert out.is_file() if case == "out is a file" else not out.exists()


def test_the_check_reads_every_image_type_the_loader_reads_and_names_a_damaged_record(tmp_path):
    out = tmp_path / "out"
    image_dir = out / "img_align_celeba"
    image_dir.mkdir(parents=True)
    for index in range(1, 4):  # the official PNG copy: "checking 0 images", exit 1, no word why
        random_rgb((178, 218), index).save(image_dir / f"{index:06d}.png")
    assert prepare("--out", out).returncode == 0
    cut = image_dir / "000002.png"
    cut.write_bytes(cut.read_bytes()[:-3000])
    (out / "prepare_celeba.json").write_text("{bad")
    check = prepare("--out", out)
    assert check.returncode == 1 and "Traceback" not in check.stderr and "ready:" not in check.stdout
    assert "000002.png (cut short" in check.stdout and "prepare_celeba.json' is damaged" in check.stdout
    empty = tmp_path / "empty"
    (empty / "img_align_celeba").mkdir(parents=True)
    nothing = prepare("--out", empty)
    assert nothing.returncode == 1 and f"problem: no images in '{empty / 'img_align_celeba'}'" in nothing.stdout


def test_a_zip_made_on_a_mac_unpacks_its_faces_alone(tmp_path):
    """Its __MACOSX/img_align_celeba/._000001.jpg entries were unpacked as faces, then failed the check."""
    archive = write_zip(tmp_path / "celeba.zip")
    with zipfile.ZipFile(archive, "a") as zipped:
        for index in range(1, FACES + 1):
            zipped.writestr(f"__MACOSX/img_align_celeba/._{index:06d}.jpg", b"\x00\x05\x16\x07 AppleDouble")
    result = prepare("--zip", archive, "--out", tmp_path / "out")
    assert result.returncode == 0 and f"unpacking {FACES} images" in result.stdout, result.stdout + result.stderr
    assert not list((tmp_path / "out" / "img_align_celeba").glob(".*"))


def test_the_check_reads_kaggles_unpacked_layout_as_the_loader_does(tmp_path):
    """archive/img_align_celeba/img_align_celeba/*.jpg with archive/list_eval_partition.csv: the loader
    trains on it, and the check said there were no images, or no partition file."""
    archive = tmp_path / "archive"
    faces = archive / "img_align_celeba" / "img_align_celeba"
    faces.mkdir(parents=True)
    for index in range(1, FACES + 1):
        (faces / f"{index:06d}.jpg").write_bytes(jpeg((178, 218), index))
    (archive / "list_eval_partition.csv").write_text("image_id,partition\n" + "".join(
        f"{index:06d}.jpg,{0 if index <= 8 else 1 if index <= 10 else 2}\n" for index in range(1, FACES + 1)))
    for out in (archive, archive / "img_align_celeba"):
        result = prepare("--out", out)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "partition: train 8, valid 2, test 2" in result.stdout and f"data.root={faces}" in result.stdout


def test_a_zip_is_not_unpacked_beside_kaggles_nested_folder_which_the_loader_reads(tmp_path):
    """It unpacked into out/img_align_celeba while the check and the loader read the nested folder:
    a second copy nothing read, and 'run the --zip command again' for ever."""
    nested = tmp_path / "out" / "img_align_celeba" / "img_align_celeba"
    nested.mkdir(parents=True)
    (nested / "000001.jpg").write_bytes(jpeg((178, 218), 1))
    result = prepare("--zip", write_zip(tmp_path / "celeba.zip"), "--out", tmp_path / "out")
    assert result.returncode == 1 and f"holds '{nested}', which the loader reads" in result.stderr, result.stderr
    assert sorted(path.name for path in (tmp_path / "out" / "img_align_celeba").iterdir()) == ["img_align_celeba"]


def test_a_ctrl_c_while_torch_imports_is_one_line(tmp_path):
    # The imports (torch among them) take seconds, and a Ctrl-C then printed a traceback.
    interrupted_import = (
        "import builtins, runpy, sys\n"
        "real_import = builtins.__import__\n"
        "def importing(name, *args, **kwargs):\n"
        "    if name == 'torch':\n"
        "        raise KeyboardInterrupt\n"
        "    return real_import(name, *args, **kwargs)\n"
        "builtins.__import__ = importing\n"
        f"sys.argv = [{str(SCRIPT)!r}, '--out', {str(tmp_path / 'out')!r}]\n"
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", interrupted_import], capture_output=True, text=True, timeout=120,
                            cwd=REPO)
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr == "prepare_celeba: stopped before it began; nothing was written\n"
    assert not (tmp_path / "out").exists()


def test_its_output_piped_into_head_ends_quietly(tmp_path):
    write_zip(tmp_path / "celeba.zip")
    result = subprocess.run(f"'{sys.executable}' '{SCRIPT}' --zip '{tmp_path / 'celeba.zip'}' --out '{tmp_path / 'out'}'"
                            " | head -c 1", shell=True, capture_output=True, text=True, timeout=120)
    assert "Broken pipe" not in result.stderr and "Traceback" not in result.stderr, result.stderr


def _patched_central_directory(path: Path, offset: int, value: bytes) -> Path:
    """Each member's central-directory entry with `value` written at `offset` (8: its flags, 10: its
    compression method), as an encrypted zip or one of another method has them."""
    raw = bytearray(path.read_bytes())
    start = raw.find(b"PK\x01\x02")
    while start != -1:
        raw[start + offset:start + offset + len(value)] = value
        start = raw.find(b"PK\x01\x02", start + 4)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("offset, value, expected", [
    (8, b"\x01\x00", f"is encrypted ({FACES} of its faces, e.g. 'img_align_celeba/000001.jpg')"),
    (10, b"\x09\x00", f"compresses {FACES} of its faces with a method Python's zipfile cannot unpack (zip method 9; "
                       "it reads stored, deflate, bzip2, lzma)"),
])
def test_a_zip_this_script_cannot_unpack_is_refused_before_anything_is_written(tmp_path, offset, value, expected):
    # both ended in a traceback after --out and its record were written
    archive = _patched_central_directory(write_zip(tmp_path / "celeba.zip"), offset, value)
    result = prepare("--zip", archive, "--out", tmp_path / "out")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_an_out_of_the_folder_above_the_faces_points_to_them(tmp_path):
    # Google Drive's CelebA/ holds the faces in Img/img_align_celeba/: the check said "no folder" alone
    faces = tmp_path / "CelebA" / "Img" / "img_align_celeba"
    faces.mkdir(parents=True)
    (faces / "000001.jpg").write_bytes(jpeg((178, 218), 0))
    check = prepare("--out", tmp_path / "CelebA")
    assert check.returncode == 1
    assert (f"no folder '{tmp_path / 'CelebA' / 'img_align_celeba'}'; the faces are in '{faces}': give --out {faces}"
            in check.stdout), check.stdout
    assert "problem" not in prepare("--out", faces).stdout


def test_an_out_naming_the_image_folder_itself_is_refused(tmp_path):
    # it unpacked a second copy into out/img_align_celeba/img_align_celeba, which the loader then read alone
    out = tmp_path / "out"
    assert prepare("--zip", write_zip(tmp_path / "celeba.zip"), "--out", out).returncode == 0
    image_dir = out / "img_align_celeba"
    result = prepare("--zip", write_zip(tmp_path / "other.zip", seed=50), "--out", image_dir)
    assert result.returncode == 1 and f"--out '{image_dir}' is an image folder itself" in result.stderr
    assert f"--out {out}" in result.stderr and not (image_dir / "img_align_celeba").exists()


def test_files_cut_short_among_those_that_differ_are_said_to_be(tmp_path):
    out = tmp_path / "out"
    archive = write_zip(tmp_path / "celeba.zip")
    assert prepare("--zip", archive, "--out", out).returncode == 0
    cut = out / "img_align_celeba" / "000005.jpg"
    cut.write_bytes(cut.read_bytes()[:2000])  # the check's advice, "run the --zip command again", was refused
    result = prepare("--zip", archive, "--out", out)
    assert result.returncode == 1 and "1 of them are shorter than the zip's and cut short (000005.jpg): copies cut " \
        "short" in result.stderr, result.stderr
    cut.write_bytes(b"")  # (empty: a killed unzip's leftover, cut inside the header)
    assert "1 of them are shorter than the zip's and cut short (000005.jpg)" in prepare("--zip", archive, "--out",
                                                                                        out).stderr
    cut.unlink()
    assert prepare("--zip", archive, "--out", out).returncode == 0
    # a whole face of a smaller copy is shorter too: another copy, never called cut short (to be deleted)
    Image.open(out / "img_align_celeba" / "000005.jpg").resize((89, 109)).save(cut, quality=80)
    other_copy = prepare("--zip", archive, "--out", out)
    assert other_copy.returncode == 1 and "differ from what would replace them" in other_copy.stderr
    assert "cut short" not in other_copy.stderr, other_copy.stderr


def test_an_out_naming_the_image_folder_itself_is_checked_as_the_loader_reads_it(tmp_path):
    # the ready line's data.root, given back as --out: "no folder '.../img_align_celeba/img_align_celeba'"
    out = tmp_path / "out"
    assert prepare("--zip", write_zip(tmp_path / "celeba.zip"), "--out", out).returncode == 0
    checked = prepare("--out", out / "img_align_celeba")
    assert checked.returncode == 0 and f"checking {FACES} images in" in checked.stdout, checked.stdout + checked.stderr
    assert f"data.root={out / 'img_align_celeba'}" in checked.stdout
    (tmp_path / "empty").mkdir()
    assert "no folder" in prepare("--out", tmp_path / "empty").stdout


def test_the_check_notes_images_in_no_split_and_faces_in_two_files(tmp_path):
    out = tmp_path / "out"
    assert prepare("--zip", write_zip(tmp_path / "celeba.zip"), "--out", out).returncode == 0
    (out / "list_eval_partition.txt").write_text("".join(f"{index:06d}.jpg 0\n" for index in range(1, 11)))
    noted = prepare("--out", out)
    assert noted.returncode == 0 and "note: 2 of the images are in no split of" in noted.stdout, noted.stdout
    random_rgb((178, 218), 3).save(out / "img_align_celeba" / "000003.png")
    twice = prepare("--out", out)
    assert twice.returncode == 1 and "problem: 1 face(s) are there in two files of one name (000003, e.g. .jpg and " \
        ".png): each trains twice" in twice.stdout, twice.stdout


def test_training_warns_of_an_unpack_that_did_not_finish_or_lost_images(tmp_path):
    """A kill or a full disk mid-unpack left 14 of 200 faces, and training read them without a word."""
    import json
    import warnings

    from gan.data.image_files import celeba_dataset

    out = tmp_path / "out"
    assert prepare("--zip", write_zip(tmp_path / "celeba.zip"), "--out", out).returncode == 0
    record = out / "prepare_celeba.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(celeba_dataset(out, 32)) == FACES  # a finished unpack: no word
    record.write_text(json.dumps({**json.loads(record.read_text()), "complete": False, "images": 200}))
    with pytest.warns(UserWarning, match=rf"'{record}' says the unpack of CelebA into '.*img_align_celeba' did not "
                                         rf"finish \({FACES} of 200 images there\): this run trains on those"):
        celeba_dataset(out / "img_align_celeba", 32)
    record.write_text(json.dumps({**json.loads(record.read_text()), "complete": True}))
    with pytest.warns(UserWarning, match=rf"holds {FACES} images, and 200 were unpacked into it .*: {200 - FACES} are "
                                         "gone"):
        celeba_dataset(out, 32)


def test_a_7z_part_given_as_the_zip_is_said_to_be_one_not_damaged(tmp_path):
    # "is not a readable zip ...; download it again" of the official PNG copy's first 7z part
    part = tmp_path / "img_align_celeba_png.7z.001"
    part.write_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(64))
    result = prepare("--zip", part, "--out", tmp_path / "out")
    assert result.returncode == 1 and "is a 7-Zip archive" in result.stderr and "download it again" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_out_of_dot_from_inside_the_image_folder_is_that_folder(tmp_path, monkeypatch):
    # --zip ... --out . from inside img_align_celeba/ unpacked a nested second copy and said "ready"
    out = tmp_path / "out"
    archive = write_zip(tmp_path / "celeba.zip")
    assert prepare("--zip", archive, "--out", out).returncode == 0
    record = out / "prepare_celeba.json"
    record.write_text(record.read_text().replace('"complete": true', '"complete": false'))
    inside = subprocess.run([sys.executable, str(SCRIPT), "--zip", str(archive), "--out", "."], capture_output=True,
                            text=True, timeout=120, cwd=out / "img_align_celeba")
    assert inside.returncode == 1 and "is an image folder itself" in inside.stderr, inside.stderr
    assert not (out / "img_align_celeba" / "img_align_celeba").exists()
    checked = subprocess.run([sys.executable, str(SCRIPT), "--out", "."], capture_output=True, text=True, timeout=120,
                             cwd=out / "img_align_celeba")
    assert checked.returncode == 1 and "did not finish" in checked.stdout, checked.stdout  # (its record, beside it)


def test_a_long_check_shows_its_progress(tmp_path, monkeypatch, capsys):
    # 34 s of CelebA's 202,599 headers said only "checking 202599 images ..."
    import functools
    import importlib.util

    from gan.core.progress import DelayedProgress

    out = tmp_path / "out"
    assert prepare("--zip", write_zip(tmp_path / "celeba.zip"), "--out", out).returncode == 0
    spec = importlib.util.spec_from_file_location("prepare_celeba", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "DelayedProgress", functools.partial(DelayedProgress, after_s=0))  # (as if slow)
    size, problems = script.check(out)
    assert size == (178, 218) and problems == []
    assert f"image {FACES}/{FACES} (100%)" in capsys.readouterr().out


def test_a_rerun_shows_its_look_at_the_faces_there_and_the_unpack_its_pace(tmp_path, monkeypatch, capsys):
    # a rerun said nothing for 23 s (the CRC of each face already there), and the unpack printed bare
    # counts every 5,000 images
    import functools
    import importlib.util

    from gan.core.progress import DelayedProgress

    archive, out = write_zip(tmp_path / "celeba.zip"), tmp_path / "out"
    spec = importlib.util.spec_from_file_location("prepare_celeba", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "DelayedProgress", functools.partial(DelayedProgress, after_s=0))  # (as if slow)
    monkeypatch.setattr(sys, "argv", ["prepare_celeba.py", "--zip", str(archive), "--out", str(out)])
    script.main()
    printed = capsys.readouterr().out
    assert f"face of the zip looked for in --out {FACES}/{FACES} (100%)" in printed
    assert f"image {FACES}/{FACES} (100%)" in printed and "img/s" in printed


def test_the_faces_the_partition_lists_and_the_folder_lacks_are_named(tmp_path):
    archive, partition, out = write_zip(tmp_path / "celeba.zip"), write_partition(tmp_path / "p.txt"), tmp_path / "out"
    assert prepare("--zip", archive, "--partition", partition, "--out", out).returncode == 0
    (out / "img_align_celeba" / "000007.jpg").unlink()
    checked = prepare("--out", out)
    assert "note: 1 of the images the partition lists are not in the folder (000007)" in checked.stdout, checked.stdout
