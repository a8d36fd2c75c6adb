"""The decoded-image cache: same batches as the uncached loader, rebuilt when its source changes."""

import io
import json
import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import damage_past_the_header, random_rgb, tiny_config

import gan.data.cache as cache_module
from gan.core.config import DataConfig
from gan.core.files import WriteError
from gan.core.registry import ConfigError
from gan.data import build_dataset, training_batches
from gan.training.loop import train

CPU = torch.device("cpu")


@pytest.fixture
def folder(tmp_path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for index in range(10):
        random_rgb((30 + index, 24 + 2 * index), seed=index).save(images / f"{index:02d}.png")
    return images


def config_for(folder: Path, cache: str, tmp_path: Path) -> DataConfig:
    return DataConfig(dataset="folder", root=str(folder), resolution=16, num_workers=0, cache=cache,
                      cache_dir=str(tmp_path / "cache"), hflip=True)


def take(stream, count: int) -> list[torch.Tensor]:
    return [next(stream)["image"].clone() for _ in range(count)]  # cached batches reuse two buffers


@pytest.mark.parametrize("mode", ["mmap", "device"])
def test_cached_batches_equal_the_uncached_loader_from_any_position(folder, tmp_path, mode):
    uncached_config, cached_config = config_for(folder, "off", tmp_path), config_for(folder, mode, tmp_path)
    dataset = build_dataset(uncached_config)
    for start in (0, 7):  # 7: a resume mid-epoch
        uncached = take(training_batches(uncached_config, dataset, 4, 3, start, CPU), 6)  # 2.4 epochs
        cached = take(training_batches(cached_config, dataset, 4, 3, start, CPU), 6)
        for a, b in zip(uncached, cached):
            assert torch.equal(a, b)
    flipped = torch.cat(cached)
    assert flipped.dtype == torch.float32 and flipped.min() >= -1 and flipped.max() <= 1


def test_the_cache_is_built_once_and_rebuilt_when_the_source_changes(folder, tmp_path, monkeypatch):
    builds = []
    original = cache_module._build
    monkeypatch.setattr(cache_module, "_build", lambda *args: builds.append(args[1]) or original(*args))
    config = config_for(folder, "mmap", tmp_path)

    def first_batch() -> torch.Tensor:
        return next(training_batches(config, build_dataset(config), 10, 0, 0, CPU))["image"]

    before = first_batch()
    first_batch()
    assert len(builds) == 1  # the second run reads the cache
    random_rgb((40, 40), seed=99).save(folder / "03.png")  # one file rewritten
    after = first_batch()
    assert len(builds) == 2 and not torch.equal(before, after)
    uncached = config_for(folder, "off", tmp_path)
    assert torch.equal(after, next(training_batches(uncached, build_dataset(uncached), 10, 0, 0, CPU))["image"])
    (folder / "09.png").unlink()  # one file removed
    first_batch()
    config.resolution = 8  # another size
    first_batch()
    assert len(builds) == 4


def test_an_out_of_date_cache_of_the_same_images_is_removed_before_the_rebuild(folder, tmp_path, monkeypatch, capsys):
    # It was removed only after a successful build, whose disk space it held: a disk with room for one
    # cache failed the rebuild as full.
    config = config_for(folder, "mmap", tmp_path)
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    (old_array,) = (tmp_path / "cache").glob("*.npy")
    random_rgb((40, 40), seed=99).save(folder / "03.png")
    original, present = cache_module._build, []
    monkeypatch.setattr(cache_module, "_build", lambda *args: present.append(old_array.exists()) or original(*args))
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    assert present == [False] and len(list((tmp_path / "cache").glob("*.npy"))) == 1
    assert f"removing the out-of-date cache '{old_array}' of this data set" in capsys.readouterr().err



def test_an_out_of_date_cache_that_cannot_be_removed_is_warned_of_and_the_new_one_built(folder, tmp_path, monkeypatch):
    # an immutable old array stopped the run after "removing the out-of-date cache", its header gone
    config = config_for(folder, "mmap", tmp_path)
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    (old_array,) = (tmp_path / "cache").glob("*.npy")
    random_rgb((40, 40), seed=99).save(folder / "03.png")
    unlink = Path.unlink

    def refused_for_the_old_array(path, missing_ok=False):
        if path == old_array:
            raise PermissionError(1, "Operation not permitted", str(path))
        return unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refused_for_the_old_array)
    with pytest.warns(UserWarning, match=rf"the out-of-date cache '{old_array}' could not be removed \(Operation not "
                                         r"permitted\) and stays, unread: remove it yourself"):
        batch = next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    uncached = config_for(folder, "off", tmp_path)
    assert torch.equal(batch["image"], next(training_batches(uncached, build_dataset(uncached), 2, 0, 0, CPU))["image"])
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2

def test_a_cache_without_its_header_is_rebuilt(folder, tmp_path):
    config = config_for(folder, "mmap", tmp_path)
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    (header,) = (tmp_path / "cache").glob("*.json")
    header.write_text("{broken")
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    assert header.read_text().startswith("{\n")


def test_training_with_the_cache_gives_the_same_weights(folder, tmp_path):
    common = ["data.dataset=folder", f"data.root='{folder}'", "data.resolution=32", "data.hflip=true",
              f"data.cache_dir='{tmp_path / 'cache'}'"]
    runs = [train(tiny_config(*common, f"data.cache={mode}"), tmp_path / mode, CPU, progress_stream=sys.stdout)
            for mode in ("off", "mmap")]
    weights = [torch.load(run.checkpoint, weights_only=True)["networks"]["generator"] for run in runs]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_the_cache_is_only_for_image_file_datasets():
    # warned of as every setting that another dataset alone reads (data.scale warned; data.cache was an error)
    with pytest.warns(UserWarning, match="data.cache = 'mmap' changes nothing: it is read only when data.dataset "
                                         "is 'celeba' or 'folder'"):
        tiny_config("data.cache=mmap")
    with pytest.raises(ConfigError, match="data.cache must be one of off, mmap, device"):
        tiny_config("data.cache=gpu")


def test_the_device_copy_is_made_in_chunks_and_equals_the_array(monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, (7, 3, 4, 4), dtype=np.uint8)
    monkeypatch.setattr(cache_module, "UPLOAD_CHUNK_BYTES", 2 * images[0].nbytes)  # 4 chunks: 2, 2, 2, 1
    uploaded = cache_module.upload_to_device(images, CPU)
    assert uploaded.dtype == torch.uint8 and torch.equal(uploaded, torch.from_numpy(images))


def test_a_device_cache_on_the_cpu_is_read_memory_mapped_not_copied(folder, tmp_path, monkeypatch):
    """On the CPU, data.cache = "device" copied the whole decoded data set into the process's memory,
    checked against no memory left (the CUDA copy is checked against the GPU's free memory), while
    the docs said host memory stays bounded: it now reads the memory map, as "mmap" does."""
    config, mapped = config_for(folder, "device", tmp_path), config_for(folder, "mmap", tmp_path)
    dataset = build_dataset(config)
    expected = take(training_batches(mapped, dataset, 4, 3, 0, CPU), 3)
    monkeypatch.setattr(cache_module, "upload_to_device", lambda *args: pytest.fail("the cache was copied"))
    with pytest.warns(UserWarning, match='data.cache = "device" on the cpu reads the cache memory-mapped, as "mmap" '
                                         "does"):
        stream = training_batches(config, dataset, 4, 3, 0, CPU)
    assert isinstance(stream.images, np.ndarray) and stream.mapped is not None  # (the map, held open)
    for a, b in zip(expected, take(stream, 3)):
        assert torch.equal(a, b)


def test_a_device_cache_larger_than_the_free_gpu_memory_says_what_it_needs(monkeypatch):
    huge = np.broadcast_to(np.zeros((1, 3, 128, 128), dtype=np.uint8), (43691, 3, 128, 128))  # 2 GiB, no memory
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (2**30, 80 * 2**30))
    with pytest.raises(ConfigError, match=r'data.cache="device" needs 2.00 GiB of GPU memory for 43691 images of '
                                          r"128 px; cuda has 1.00 GiB free of 80.00 GiB: use data.cache=\"mmap\""):
        cache_module.upload_to_device(huge, torch.device("cuda"))


def test_a_killed_builders_temp_file_is_removed_and_a_live_ones_kept(folder, tmp_path):
    import subprocess

    config = config_for(folder, "mmap", tmp_path)
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    (header,) = (tmp_path / "cache").glob("*.json")
    header.unlink()  # so the next start rebuilds
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid now names no process
    here = cache_module.host_tag()
    abandoned = tmp_path / "cache" / f"{header.stem}.npy.{gone.pid}.{here}.tmp"
    building = tmp_path / "cache" / f"{header.stem}.npy.{os.getppid()}.{here}.tmp"  # a process that is alive
    # Another machine sharing the folder, building this cache: its pid names no process here.
    elsewhere = tmp_path / "cache" / f"{header.stem}.npy.{gone.pid}.h0000beef.tmp"
    long_quiet = tmp_path / "cache" / f"{header.stem}.npy.999999999.h0000beef.tmp"
    header_temp = tmp_path / "cache" / f"{header.stem}.json.{gone.pid}.{here}.abcd1234.tmp"  # (temp_name's form)
    for path in (abandoned, building, elsewhere, long_quiet, header_temp):
        path.write_bytes(b"partial")
    os.utime(long_quiet, (time.time() - 601,) * 2)
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    assert not abandoned.exists() and building.exists() and not header_temp.exists()
    assert elsewhere.exists() and not long_quiet.exists()  # (removing it failed that build's rename)


def test_a_cache_the_disk_cannot_hold_says_the_free_space_after_letting_go_of_its_array(folder, tmp_path, monkeypatch):
    """The free space was measured while the array's memory map still held the unlinked file's blocks:
    "(0.0 MiB free)" on a disk with 17 MiB free, for a cache of 105.5 MiB."""
    import errno
    import weakref

    opened = []
    open_memmap = np.lib.format.open_memmap

    def tracked(*args, **kwargs):
        array = open_memmap(*args, **kwargs)
        opened.append(weakref.ref(array))
        return array

    def full_disk(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    def free_space(folder):
        return "array released" if all(array() is None for array in opened) else "array still mapped"

    monkeypatch.setattr(np.lib.format, "open_memmap", tracked)
    monkeypatch.setattr(cache_module, "_claim_space", full_disk)
    monkeypatch.setattr(cache_module, "free_space", free_space)
    with pytest.raises(WriteError, match=r"\(7\.5 KiB needed, array released\): .*No space left"):
        cache_module._build(build_dataset(config_for(folder, "mmap", tmp_path)), tmp_path / "cache.npy", io.StringIO())
    assert opened and not list(tmp_path.glob("cache.npy*"))


def test_a_build_whose_lock_a_full_disk_refuses_leaves_neither_the_lock_file_nor_the_folders_it_made(
        folder, tmp_path, monkeypatch):
    # An empty <name>.lock was left in the cache folder made for it, and the error did not say it was the cache's
    import errno

    import gan.core.files as files_module

    def full_disk():
        raise OSError(errno.ENOSPC, "No space left on device")

    config = config_for(folder, "mmap", tmp_path)
    config.cache_dir = str(tmp_path / "new" / "cache")
    monkeypatch.setattr(files_module, "host_tag", full_disk)  # (in the lock's record, written to the lock file)
    with pytest.raises(WriteError, match=r"the decoded-image cache '.*new/cache/\w+\.npy' cannot be built: could not "
                                         r"write '.*\.lock' .*No space left on device; set data.cache_dir to a disk "
                                         r"with room, or data.cache=\"off\""):
        next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    assert not (tmp_path / "new").exists()
    # A link where the lock goes is said in its own words, not as a full disk
    monkeypatch.undo()
    lock = Path(build_once(folder, tmp_path)[1]).with_suffix(".lock")
    for built in lock.parent.iterdir():
        built.unlink()
    lock.symlink_to(tmp_path / "elsewhere")
    config = config_for(folder, "mmap", tmp_path)
    with pytest.raises(WriteError) as refused:
        next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    assert str(refused.value) == f"'{lock}' is a symlink where gan keeps a lock file: remove it (gan writes its own)"


def test_a_disk_another_writer_filled_during_the_build_is_said_as_such(folder, tmp_path, monkeypatch):
    """Two runs building one cache at once on a disk with room for one: each failed with "(93.8 MiB needed,
    150.0 MiB free): No space left on device; set data.cache_dir to a disk with room", the free space
    measured once the other's temp was gone too, the advice wrong for a disk that had room."""
    import errno

    def filled_meanwhile(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(cache_module, "_claim_space", filled_meanwhile)
    dataset = build_dataset(config_for(folder, "mmap", tmp_path))
    with pytest.raises(WriteError, match=r"No space left on device.*; the disk had [\d.]+ MiB free as this build began, room for "
                                         r"it: another writer filled it meanwhile") as raised:
        cache_module._build(dataset, tmp_path / "cache.npy", io.StringIO())
    assert "a disk with room" not in str(raised.value)
    monkeypatch.setattr(cache_module, "_free_bytes", lambda folder: 1000)  # (no room for its 7.5 KiB from the start)
    with pytest.raises(WriteError, match=r"No space left on device.*; set data.cache_dir to a disk with room"):
        cache_module._build(dataset, tmp_path / "cache.npy", io.StringIO())


def test_an_image_that_fails_a_strict_cache_build_is_said_as_the_image_not_as_the_disk(tmp_path):
    # "could not write the decoded-image cache (65641.0 MiB free): cannot read image ...; set data.cache_dir
    # to a disk with room": an image's error (--strict, or its folder gone) read as a full disk
    from gan.data.decode import ImageReadError

    folder = tmp_path / "faces"
    folder.mkdir()
    for index in range(4):
        random_rgb((40, 40), index).save(folder / f"{index}.jpg", quality=95)
    damage_past_the_header(folder / "2.jpg")
    config = config_for(folder, "mmap", tmp_path)
    config.strict = True
    with pytest.raises(ImageReadError, match="2.jpg") as raised:
        next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    assert not isinstance(raised.value, WriteError) and "could not write" not in str(raised.value)
    assert not list((tmp_path / "cache").glob("*.tmp"))  # (its temp removed)


CUT_SHORT_UNDER_THE_RUN = """
import os, sys, torch
from pathlib import Path
from gan.core.config import DataConfig
from gan.data import build_dataset, training_batches
config = DataConfig(dataset="folder", root=sys.argv[1], resolution=16, num_workers=0, cache="mmap", cache_dir=sys.argv[2])
batches = training_batches(config, build_dataset(config), 4, 0, 0, torch.device("cpu"))
next(batches)
(array,) = Path(sys.argv[2]).glob("*.npy")
os.truncate(array, 1000)  # (a copy or `rsync --inplace` over it, not gan: gan replaces files whole)
try:
    for _ in range(10):
        next(batches)
except OSError as error:
    print(error)
"""


def test_a_cache_cut_short_under_a_run_is_an_error_naming_it_not_a_bus_error(folder, tmp_path):
    # reading past the new end of the mapped file killed the run with SIGBUS: no line, no checkpoint
    import subprocess

    done = subprocess.run([sys.executable, "-c", CUT_SHORT_UNDER_THE_RUN, str(folder), str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "the decoded-image cache" in done.stdout and "was cut short while this run read it (1000 of its" \
        in done.stdout, done.stdout


ANOTHER_MACHINE = """
import sys, time, socket
from pathlib import Path
import gan.data.cache as cache_module
from gan.core.files import WriteError
from gan.core.config import DataConfig
from gan.data import build_dataset, data_identity
socket.gethostname = lambda: "another-machine"
config = DataConfig(dataset="folder", root=sys.argv[1], resolution=16, num_workers=0)
dataset = build_dataset(config)
load = dataset.load
dataset.load = lambda index: time.sleep(0.3) or load(index)  # a slow build, under way while this machine starts
images = cache_module.load_or_build_cache(dataset, data_identity(config), Path(sys.argv[2]))
print("built", images.shape[0])
"""


def test_a_build_on_another_machine_sharing_the_folder_is_left_to_finish(folder, tmp_path, monkeypatch):
    # Its pid means nothing here and looked dead: this machine's build removed its temp, and its
    # rename then failed as a full disk
    import subprocess

    config = config_for(folder, "mmap", tmp_path)
    cache_dir = tmp_path / "cache"
    other = subprocess.Popen([sys.executable, "-c", ANOTHER_MACHINE, str(folder), str(cache_dir)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list(cache_dir.glob("*.npy.*.tmp")) and time.time() < deadline and other.poll() is None:
        time.sleep(0.05)
    monkeypatch.setattr(cache_module, "process_alive", lambda pid: pid == os.getpid())  # another machine's pid
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))  # built here too, meanwhile
    output, errors = other.communicate(timeout=60)
    assert other.returncode == 0 and "built 10" in output, errors[-2000:]
    assert not list(cache_dir.glob("*.tmp"))



BUILT_AT_ONCE = """
import hashlib, sys, time
from pathlib import Path
import gan.data.cache as cache_module
from gan.core.config import DataConfig
from gan.data import build_dataset, data_identity
config = DataConfig(dataset="folder", root=sys.argv[1], resolution=16, num_workers=0)
dataset = build_dataset(config)
load = dataset.load
dataset.load = lambda index: time.sleep(0.2) or load(index)  # a build long enough for the other to start meanwhile
ready = Path(sys.argv[3])
ready.touch()
while len(list(ready.parent.iterdir())) < 2:  # (both start together, as a sweep's runs do)
    time.sleep(0.01)
images = cache_module.load_or_build_cache(dataset, data_identity(config), Path(sys.argv[2]))
print(hashlib.sha256(images.tobytes()).hexdigest())
"""


def test_two_processes_needing_one_cache_at_once_decode_it_once(folder, tmp_path):
    """The runs of `gan sweep --jobs 2` (or of a job array) each decoded the same cache at once: two temps
    of its whole size side by side, which failed both runs on a disk with room for one."""
    import subprocess

    (tmp_path / "ready").mkdir()
    builders = [subprocess.Popen([sys.executable, "-c", BUILT_AT_ONCE, str(folder), str(tmp_path / "cache"),
                                  str(tmp_path / "ready" / str(index))], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for index in range(2)]
    outputs = [builder.communicate(timeout=120) for builder in builders]
    assert [builder.returncode for builder in builders] == [0, 0], [errors[-2000:] for _, errors in outputs]
    said = "".join(errors for _, errors in outputs)
    assert said.count("decoding 10 images once into the cache") == 1, said
    assert said.count("another process is building it") == 1 and ".lock'), to read it once built" in said, said
    assert len({digest.strip() for digest, _ in outputs}) == 1  # both read the one array built
    assert sorted(path.suffix for path in (tmp_path / "cache").iterdir()) == [".json", ".npy", ".used"]  # (no lock left)


def cache_files_of(config: DataConfig, cache_dir: Path) -> tuple[Path, Path]:
    """The lock file and the array temp of this process's build of `config`'s cache in `cache_dir`."""
    from gan.data import data_identity

    name = cache_module.cache_name(cache_module.cache_header(build_dataset(config), data_identity(config)))
    return cache_dir / f"{name}.lock", cache_dir / f"{name}.npy.{os.getpid()}.{cache_module.host_tag()}.tmp"


def test_a_run_waits_for_another_users_build_of_a_shared_cache(folder, tmp_path, monkeypatch, capsys):
    """Its lock file (mode 644, that user's umask's) could not be opened to write: the run failed "its folder
    data.cache_dir = '...' cannot be written (Permission denied)" rather than wait for the build."""
    import subprocess

    from conftest import as_another_users

    config = config_for(folder, "mmap", tmp_path)
    lock, _ = cache_files_of(config, tmp_path / "cache")
    lock.parent.mkdir()
    lock.write_text("4242\n")
    builder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; handle = open(sys.argv[1], 'rb'); "
                                "fcntl.flock(handle, fcntl.LOCK_EX); print('held', flush=True); time.sleep(1)",
                                str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert builder.stdout.readline().strip() == "held"
        as_another_users(monkeypatch, lock)
        next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    finally:
        builder.kill()
        builder.wait()
    assert f"waiting for the decoded-image cache '{lock.with_suffix('.npy')}': another process is building it" in \
        capsys.readouterr().err
    assert cache_module.list_caches(tmp_path / "cache")


def test_a_build_another_user_left_killed_is_taken_over_its_temp_named_not_the_folder(folder, tmp_path, monkeypatch):
    """A build of another user's killed with -9 left its lock file and a temp of hundreds of MiB in a sticky
    folder: every later run of this user failed "its folder data.cache_dir = ... cannot be written"."""
    import subprocess

    from conftest import as_another_users

    config = config_for(folder, "mmap", tmp_path)
    lock, temp = cache_files_of(config, tmp_path / "cache")
    gone = subprocess.Popen(["true"])
    gone.wait()  # (its pid now names no process)
    dead = temp.with_name(temp.name.replace(f".{os.getpid()}.", f".{gone.pid}."))
    lock.parent.mkdir()
    lock.write_text(f"{gone.pid}\n")
    dead.write_bytes(b"partial" * 1000)
    as_another_users(monkeypatch, lock, dead)
    with pytest.warns(UserWarning, match=rf"the temp file '{re.escape(str(dead))}' of a decoded-image cache build "
                                         r"that died, another user's \('.+'\), could not be removed \(Operation not "
                                         r"permitted\) and stays, holding 6.8 KiB: ask '.+' to remove it") as caught:
        next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    said = [str(each.message) for each in caught if each.category is UserWarning]
    assert len(said) == 1 and not any("cannot be written" in line for line in said)  # (once, and no folder blamed)
    assert cache_module.list_caches(tmp_path / "cache") and dead.exists()


def test_a_build_in_another_pid_namespace_of_this_host_is_left_to_finish(folder, tmp_path, monkeypatch):
    """A container sharing the host's name and the cache folder: its live build's pid (77777) was no
    process here, so `gan cache clear` and this host's builds removed its temp as a dead build's, and
    its rename failed as "a disk with room" with 47 GB free."""
    import gan.core.files as files_module

    monkeypatch.setattr(files_module, "_pid_namespace", lambda: "pid:[4026532999]")  # the container's
    container_tag = files_module.host_tag()
    monkeypatch.undo()
    assert container_tag != files_module.host_tag()  # the same host name, another namespace
    config = config_for(folder, "mmap", tmp_path)
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    (header,) = (tmp_path / "cache").glob("*.json")
    header.unlink()  # so the next start rebuilds
    building = tmp_path / "cache" / f"{header.stem}.npy.77777.{container_tag}.tmp"
    building.write_bytes(b"partial")
    monkeypatch.setattr(cache_module, "process_alive", lambda pid: pid == os.getpid())  # 77777: no process here
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    assert building.exists() and not files_module.is_stale_temp(building)
    assert building in cache_module.scan_cache_folder(tmp_path / "cache").building


def test_a_build_whose_temp_another_process_removed_says_so(folder, tmp_path, monkeypatch):
    config = config_for(folder, "mmap", tmp_path)
    checksums = cache_module.chunk_checksums

    def removed_meanwhile(images, chunks=None):  # (as `gan cache clear` elsewhere did)
        for temp in (tmp_path / "cache").glob("*.npy.*.tmp"):
            temp.unlink()
        return checksums(images, chunks)

    monkeypatch.setattr(cache_module, "chunk_checksums", removed_meanwhile)
    with pytest.raises(WriteError, match=r"was being built in '.*\.tmp', which another process removed meanwhile "
                                         r"\(gan cache clear, or a build of another machine or container"):
        next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))

# ----------------------------------------------------------------------------- damage, and managing caches


def build_once(folder: Path, tmp_path: Path, **changes) -> tuple[DataConfig, Path]:
    config = config_for(folder, "mmap", tmp_path)
    for key, value in changes.items():
        setattr(config, key, value)
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    (array,) = [entry.array_path for entry in cache_module.list_caches(tmp_path / "cache")
                if entry.header["resolution"] == config.resolution]
    return config, array


def batches_after_damage(config: DataConfig) -> torch.Tensor:
    with pytest.warns(UserWarning, match="decoded-image cache .* rebuilding it") as caught:
        batch = next(training_batches(config, build_dataset(config), 10, 0, 0, CPU))["image"]
    return batch, str(caught[0].message)


def uncached_batch(folder: Path, tmp_path: Path) -> torch.Tensor:
    config = config_for(folder, "off", tmp_path)
    return next(training_batches(config, build_dataset(config), 10, 0, 0, CPU))["image"]


def test_a_zero_byte_array_under_a_valid_header_is_rebuilt(folder, tmp_path):
    config, array = build_once(folder, tmp_path)
    array.write_bytes(b"")
    batch, message = batches_after_damage(config)
    assert "is empty (0 bytes)" in message
    assert torch.equal(batch, uncached_batch(folder, tmp_path))


def test_an_array_cut_short_or_of_another_shape_is_rebuilt(folder, tmp_path):
    config, array = build_once(folder, tmp_path)
    with open(array, "r+b") as handle:
        handle.truncate(array.stat().st_size - 100)
    size = array.stat().st_size
    assert f"is {size} bytes where its header needs {size + 100}" in batches_after_damage(config)[1]
    with open(array, "ab") as handle:
        handle.write(b"\0" * 100)  # a complete array with bytes after it
    assert "bytes where its header needs" in batches_after_damage(config)[1]
    np.save(array, np.zeros((10, 3, 8, 8), np.uint8))
    assert "where the header says uint8[10, 3, 16, 16]" in batches_after_damage(config)[1]


@pytest.mark.parametrize("verify", [False, True])
def test_random_bytes_of_the_right_size_fail_the_checksums(folder, tmp_path, verify):
    config, array = build_once(folder, tmp_path, cache_verify=verify)
    images = np.load(array, mmap_mode="r+")
    images[3] = np.random.default_rng(0).integers(0, 256, images[3].shape, dtype=np.uint8)
    images.flush()
    del images
    batch, message = batches_after_damage(config)  # 10 images: one chunk, which sampling always checks
    assert "has images 0-9 changed since it was built" in message
    assert torch.equal(batch, uncached_batch(folder, tmp_path))


def test_an_open_verifies_a_small_cache_whole_and_a_ninth_of_celebas_at_64_px():
    # 2 chunks of CelebA's 792 at 64 px: a start trained on 2,441 zeroed faces unsaid, 39 times in 40
    from gan.data.cache import CHECKSUM_IMAGES, chunks_verified_on_open

    def chunk_bytes(resolution: int) -> int:
        return CHECKSUM_IMAGES * 3 * resolution * resolution

    assert chunks_verified_on_open(36, chunk_bytes(64)) == 36  # the 9,000 shared faces: every chunk
    assert chunks_verified_on_open(792, chunk_bytes(64)) == 85  # CelebA at 64 px: 256 MiB of 2.3 GiB
    assert chunks_verified_on_open(792, chunk_bytes(128)) == 21  # at 128 px: 256 MiB of 9.3 GiB
    assert chunks_verified_on_open(1, 0) == 1 and chunks_verified_on_open(10**6, 10**9) == 2  # (at least 2)


def test_an_image_rewritten_in_place_with_size_and_time_kept_is_noticed(folder, tmp_path):
    config, _ = build_once(folder, tmp_path)
    target = folder / "04.png"
    stat = target.stat()
    replacement = folder.parent / "other.png"
    random_rgb((30 + 4, 24 + 8), seed=1234).save(replacement)
    data = replacement.read_bytes()
    data = data[:stat.st_size].ljust(stat.st_size, b"\0")  # same size (PNG readers ignore trailing bytes)
    target.write_bytes(data)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the modification time set back
    assert target.stat().st_size == stat.st_size and target.stat().st_mtime_ns == stat.st_mtime_ns
    builds = []
    original = cache_module._build
    cache_module._build = lambda *args: builds.append(args[1]) or original(*args)
    try:
        next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    finally:
        cache_module._build = original
    assert len(builds) == 1


def test_a_rebuilt_cache_replaces_the_old_one_of_the_same_source(folder, tmp_path):
    config, old_array = build_once(folder, tmp_path)
    build_once(folder, tmp_path, resolution=8)  # another size of the same folder: a cache of its own
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2
    (folder / "09.png").unlink()
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    assert not old_array.exists() and len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_gan_cache_list_verify_and_clear(folder, tmp_path):
    from click.testing import CliRunner

    from gan.commands.main import main

    cache_dir = tmp_path / "cache"
    _, array = build_once(folder, tmp_path)
    build_once(folder, tmp_path, resolution=8, max_images=5)
    leftover = cache_dir / f"{array.stem}.npy.999999999.tmp"  # a temp of a build whose process is gone
    leftover.write_bytes(b"x" * 1000)
    os.utime(leftover, (time.time() - 6 * 86400,) * 2)  # --older-than applies to leftovers too
    listed = CliRunner().invoke(main, ["cache", "list", "--dir", str(cache_dir)])
    assert listed.exit_code == 0 and "2 cache(s)" in listed.output and str(folder.resolve()) in listed.output
    # (caches of one folder told apart: the part of it each holds)
    assert [line.endswith("data.max_images 5") for line in listed.output.splitlines() if " px " in line].count(True) == 1
    assert "1 leftover file(s)" in listed.output and "damaged" not in listed.output
    assert CliRunner().invoke(main, ["cache", "verify", "--dir", str(cache_dir)]).exit_code == 0
    images = np.load(array, mmap_mode="r+")
    images[0, 0, 0, 0] ^= 1  # one bit
    images.flush()
    del images
    verified = CliRunner().invoke(main, ["cache", "verify", "--dir", str(cache_dir)])
    assert verified.exit_code == 1 and "damaged" in verified.output and not array.exists()
    (newest,) = cache_module.list_caches(cache_dir)
    for path in (newest.header_path, newest.stamp_path):  # (its last use: the later of the two)
        os.utime(path, (time.time() - 3 * 86400,) * 2)
    kept = CliRunner().invoke(main, ["cache", "clear", "--older-than", "5", "--dir", str(cache_dir)])
    assert "removed 0 cache(s)" in kept.output and newest.array_path.exists()
    assert not leftover.exists()
    cleared = CliRunner().invoke(main, ["cache", "clear", "--older-than", "2", "--dir", str(cache_dir)])
    assert "removed 1 cache(s)" in cleared.output and list(cache_dir.iterdir()) == []
    empty = CliRunner().invoke(main, ["cache", "verify", "--dir", str(cache_dir)])
    assert empty.exit_code == 0 and f"{cache_dir}: no caches to verify" in empty.output  # not silence


def test_another_users_use_of_a_shared_cache_counts_for_clear_older_than(folder, tmp_path, monkeypatch):
    """A run noted its use by setting its cache header's time, which only the header's owner may: in a shared
    cache folder another user's daily runs went uncounted, and `gan cache clear --older-than 30` removed a
    cache in use as one no run had used."""
    from click.testing import CliRunner
    from conftest import as_another_users

    from gan.commands.main import main

    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    cache_dir.chmod(0o1777)  # (a lab's cache folder)
    config, array = build_once(folder, tmp_path)
    for path in cache_dir.iterdir():
        os.utime(path, (time.time() - 40 * 86400,) * 2)
    as_another_users(monkeypatch, array.with_suffix(".json"))  # (built by another user: its header is theirs)
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))  # (this user's run reads it)
    kept = CliRunner().invoke(main, ["cache", "clear", "--older-than", "30", "--dir", str(cache_dir)])
    assert "removed 0 cache(s)" in kept.output and array.exists(), kept.output
    (entry,) = cache_module.list_caches(cache_dir)
    assert time.time() - entry.last_used < 600 and entry.stamp_path.stat().st_mode & 0o777 == 0o666
    monkeypatch.undo()
    cleared = CliRunner().invoke(main, ["cache", "clear", "--dir", str(cache_dir)])
    assert "removed 1 cache(s)" in cleared.output and list(cache_dir.iterdir()) == []  # (its use stamp too)



def test_a_use_stamp_that_is_a_link_or_a_folder_is_never_followed_nor_counted(folder, tmp_path):
    """A link planted as <name>.used (a sticky shared folder: anyone may) had every run set its target's time,
    and kept the cache from `clear --older-than` while the target was fresh; a folder there had `clear` remove
    the cache, then fail on it, saying it removed 0."""
    from click.testing import CliRunner

    from gan.commands.main import main

    cache_dir = tmp_path / "cache"
    config, array = build_once(folder, tmp_path)
    stamp, victim = array.with_suffix(".used"), tmp_path / "victim.txt"
    victim.write_text("precious")
    os.utime(victim, (0, 0))
    stamp.unlink()
    stamp.symlink_to(victim)
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    assert victim.stat().st_mtime == 0
    for path in (array, array.with_suffix(".json")):
        os.utime(path, (time.time() - 40 * 86400,) * 2)
    os.utime(victim, None)  # (a fresh target: the cache is still 40 days unused)
    cleared = CliRunner().invoke(main, ["cache", "clear", "--older-than", "30", "--dir", str(cache_dir)])
    assert "removed 1 cache(s)" in cleared.output and not array.exists(), cleared.output
    assert stamp.is_symlink() and victim.read_text() == "precious"  # (not gan's: left, as its target)

    stamp.unlink()
    config, array = build_once(folder, tmp_path)
    stamp.unlink()
    stamp.mkdir()
    (stamp / "keepme").write_text("mine")
    cleared = CliRunner().invoke(main, ["cache", "clear", "--dir", str(cache_dir)])
    assert cleared.exit_code == 0 and "removed 1 cache(s)" in cleared.output, cleared.output
    assert (stamp / "keepme").read_text() == "mine"

def test_a_builds_lock_file_is_left_alone_while_held_and_removed_once_its_build_is_gone(folder, tmp_path):
    """`<name>.lock`, which a build holds (`BuildLock`), would have read as a file of another program's."""
    import fcntl

    from click.testing import CliRunner

    from gan.commands.main import main

    cache_dir = tmp_path / "cache"
    build_once(folder, tmp_path)
    held, dead = cache_dir / f"{'a' * 20}.lock", cache_dir / f"{'b' * 20}.lock"
    dead.write_text("999999999\n")  # (a build killed with -9 leaves its lock file, which no process holds)
    with open(held, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)  # (a build running now)
        found = cache_module.scan_cache_folder(cache_dir)
        assert (found.building, found.leftovers, found.foreign) == ([held], [dead], [])
        listed = CliRunner().invoke(main, ["cache", "list", "--dir", str(cache_dir)])
        assert "1 leftover file(s)" in listed.output and "left alone 1 file(s) that a build may" in listed.output
        assert "cannot tell are its own" not in listed.output, listed.output
        CliRunner().invoke(main, ["cache", "clear", "--dir", str(cache_dir)])
        assert held.exists() and not dead.exists()
        dead.write_text("999999999\n")
        build_once(folder, tmp_path, resolution=8)  # (a build removes the lock files of builds gone)
        assert held.exists() and not dead.exists()


def test_a_cache_whose_array_is_a_folder_is_listed_and_verified_as_such_and_left_whole(folder, tmp_path):
    """`list` said verify "removes it now"; verify removed the header, then failed on the folder ("could
    not be removed"), and the cache vanished from the next list, the folder left unexplained."""
    from click.testing import CliRunner

    from gan.commands.main import main

    _, array = build_once(folder, tmp_path)
    array.unlink()
    array.mkdir()
    cache_dir = str(tmp_path / "cache")
    listed = CliRunner().invoke(main, ["cache", "list", "--dir", cache_dir])
    assert "damaged: its array is not a file (gan removes only files it wrote: move it away" in listed.output
    assert "verify removes it now" not in listed.output, listed.output
    verified = CliRunner().invoke(main, ["cache", "verify", "--dir", cache_dir])
    assert verified.exit_code == 1 and f"'{array}' is not a file; left as it is (gan removes" in verified.output
    assert array.is_dir() and array.with_suffix(".json").is_file()
    assert "1 cache(s)" in CliRunner().invoke(main, ["cache", "list", "--dir", cache_dir]).output
    # clear removed its header, failed on the folder and stopped there, other caches left unremoved
    _, other = build_once(folder, tmp_path, resolution=8)
    cleared = CliRunner().invoke(main, ["cache", "clear", "--dir", cache_dir])
    assert cleared.exit_code == 0, cleared.output
    assert "removed 1 cache(s)" in cleared.output and f"left 1 cache(s) whose array is not a file ({array.name})" \
        in cleared.output and not other.exists()
    assert array.is_dir() and array.with_suffix(".json").is_file()


def test_gan_cache_given_the_folder_of_reference_statistics_names_them_as_such(tmp_path):
    """They were "another program's, or a cache whose header was damaged or edited"."""
    from click.testing import CliRunner

    from gan.commands.main import main

    (tmp_path / "swd-0123456789abcdef.pt").write_bytes(b"PK")
    (tmp_path / "swd-0123456789abcdef.pt.999999999.h0badcafe.0badf00d.tmp").write_bytes(b"PK")  # (a killed writer's)
    (tmp_path / "notes.txt").write_text("mine")
    listed = CliRunner().invoke(main, ["cache", "list", "--dir", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert "left alone 2 file(s) of reference statistics (those of the metrics, which gan cache does not manage" \
        in listed.output and "swd-0123456789abcdef.pt" in listed.output
    assert "left alone 1 file(s) that gan cannot tell are its own caches" in listed.output  # (notes.txt alone)


def test_a_cache_of_an_earlier_gan_is_listed_as_unused_and_removed_by_the_next_build_a_later_ones_kept(folder, tmp_path, capsys):
    # after an upgrade, its cache (never read again) was listed and verified as an ordinary one
    import json
    import shutil

    from click.testing import CliRunner

    from gan.commands.main import main

    config, array = build_once(folder, tmp_path)
    header = {**json.loads(array.with_suffix(".json").read_text()), "version": cache_module.VERSION - 1}
    earlier = array.with_name(f"{cache_module.cache_name(header)}.npy")
    shutil.copy(array, earlier)
    earlier.with_suffix(".json").write_text(json.dumps(header))
    listed = CliRunner().invoke(main, ["cache", "list", "--dir", str(tmp_path / "cache")])
    said = f"unused: another gan's (cache format {cache_module.VERSION - 1}, this gan's is {cache_module.VERSION})"
    assert listed.output.count("unused: another gan's") == 1 and said in listed.output, listed.output
    verified = CliRunner().invoke(main, ["cache", "verify", "--dir", str(tmp_path / "cache")])
    assert verified.exit_code == 0 and f"{earlier.stem}  {folder.resolve()}  (unused: another gan's" in verified.output
    # A later gan's is not out of date: two checkouts sharing the folder removed each other's at each build
    header = {**header, "version": cache_module.VERSION + 1}
    later = array.with_name(f"{cache_module.cache_name(header)}.npy")
    shutil.copy(array, later)
    later.with_suffix(".json").write_text(json.dumps(header))
    random_rgb((40, 40), seed=99).save(folder / "03.png")
    next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    said = capsys.readouterr().err
    assert f"removing the out-of-date cache '{earlier}'" in said and not earlier.exists()
    assert str(later) not in said and later.is_file() and later.with_suffix(".json").is_file()


def test_a_celeba_cache_keyed_by_the_folder_holding_its_images_is_of_the_same_source():
    # gan before 2026-12-05 keyed CelebA's cache by data.root's spelling: that cache stayed, unread, after an upgrade
    identity = {"dataset": "celeba", "resolution": 64, "split": "all", "max_images": 0, "crop": 140,
                "root": "/data/celeba/img_align_celeba"}
    assert cache_module.same_source({**identity, "root": "/data/celeba"}, identity)
    assert cache_module.same_source(identity, identity)
    assert not cache_module.same_source({**identity, "root": "/data"}, identity)
    assert not cache_module.same_source({**identity, "root": "/data/celeba", "resolution": 32}, identity)
    folder = {"dataset": "folder", "resolution": 64, "split": "all", "max_images": 0, "root": "/data/faces/train"}
    assert not cache_module.same_source({**folder, "root": "/data/faces"}, folder)


def test_a_kaggle_celeba_cache_keyed_by_its_outer_folders_is_of_the_same_source(tmp_path):
    # Kaggle's img_align_celeba/img_align_celeba/ named by the folder above both: its earlier cache stayed
    images = tmp_path / "kaggle" / "img_align_celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    identity = {"dataset": "celeba", "resolution": 64, "split": "all", "max_images": 0, "crop": 140,
                "root": str(images.resolve())}
    for named in (tmp_path / "kaggle", images.parent):
        assert cache_module.same_source({**identity, "root": str(named.resolve())}, identity)
    assert not cache_module.same_source({**identity, "root": str(tmp_path.resolve())}, identity)


def test_gan_cache_list_marks_a_cache_whose_folder_is_gone(tmp_path):
    # a cache of a folder moved or deleted since looked like any other (9.9 GB for CelebA at 128 px)
    import shutil

    from click.testing import CliRunner

    from gan.commands.main import main

    faces = tmp_path / "faces"
    faces.mkdir()
    for index in range(4):
        random_rgb((20, 20), index).save(faces / f"{index}.png")
    build_once(faces, tmp_path)
    listed = CliRunner().invoke(main, ["cache", "list", "--dir", str(tmp_path / "cache")])
    assert "its folder is gone" not in listed.output
    shutil.rmtree(faces)
    listed = CliRunner().invoke(main, ["cache", "list", "--dir", str(tmp_path / "cache")])
    assert listed.exit_code == 0 and "its folder is gone (moved or deleted since)" in listed.output, listed.output


def test_gan_cache_list_names_a_cache_cut_short(folder, tmp_path):
    """A copy or disk that cut the array short used to be listed as a sound cache."""
    from click.testing import CliRunner

    from gan.commands.main import main

    _, array = build_once(folder, tmp_path)
    size = array.stat().st_size
    with open(array, "r+b") as file:
        file.truncate(size - 100)
    listed = CliRunner().invoke(main, ["cache", "list", "--dir", str(tmp_path / "cache")])
    assert listed.exit_code == 0 and "1 cache(s)" in listed.output, listed.output
    assert f"damaged: its array is {size - 100} bytes where its header needs {size}" in listed.output
    assert array.exists()  # listing changes nothing


def test_a_build_whose_header_cannot_be_written_leaves_no_array_to_hold_the_space(folder, tmp_path, monkeypatch):
    # A full disk at the header left the array, which then held the space the next build needed.
    from gan.core.files import WriteError

    def full(path, text):
        raise WriteError(f"could not write '{path}' (0.0 MiB free): No space left on device")

    monkeypatch.setattr(cache_module, "write_text_atomically", full)
    config = config_for(folder, "mmap", tmp_path)
    with pytest.raises(WriteError, match="No space left"):
        next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    assert not list((tmp_path / "cache").glob("*.npy"))


@pytest.mark.parametrize("checksums", [None, 5, {"0": 1}, [1, 2]])
def test_a_header_whose_checksums_were_edited_is_rebuilt_not_a_traceback(folder, tmp_path, checksums):
    # checksums are no part of the cache's name, so the edited header was used: TypeError, KeyError
    config, array = build_once(folder, tmp_path)
    header_path = array.with_suffix(".json")
    header_path.write_text(json.dumps({**json.loads(header_path.read_text()), "checksums": checksums}))
    batch, message = batches_after_damage(config)
    assert "its header holds no checksums for its images" in message
    assert torch.equal(batch, uncached_batch(folder, tmp_path))


def test_a_header_whose_array_is_gone_is_listed_and_verified_as_damaged_and_the_others_still_are(folder, tmp_path):
    # `gan cache list` and `verify` stopped at it (FileNotFoundError), so no later cache was seen
    from click.testing import CliRunner

    from gan.commands.main import main

    _, lost = build_once(folder, tmp_path)
    _, kept = build_once(folder, tmp_path, resolution=8)
    lost.unlink()
    listed = CliRunner().invoke(main, ["cache", "list", "--dir", str(tmp_path / "cache")])
    assert listed.exit_code == 0 and "2 cache(s)" in listed.output and "damaged: its array is missing" in \
        listed.output, listed.output
    verified = CliRunner().invoke(main, ["cache", "verify", "--dir", str(tmp_path / "cache")])
    assert verified.exit_code != 2 and "Traceback" not in verified.output, verified.output
    assert not lost.with_suffix(".json").exists() and kept.exists()  # the damaged one removed, the sound one kept


def test_cache_commands_refuse_a_missing_dir_and_days_that_are_no_number(tmp_path):
    from click.testing import CliRunner

    from gan.commands.main import main

    for command in (["list"], ["verify"], ["clear"]):
        result = CliRunner().invoke(main, ["cache", *command, "--dir", str(tmp_path / "typo")])
        assert result.exit_code == 2 and "does not exist" in result.output, result.output
    for days in ("nan", "inf"):
        result = CliRunner().invoke(main, ["cache", "clear", "--older-than", days, "--dir", str(tmp_path)])
        assert result.exit_code == 2 and "--older-than" in result.output, result.output


def test_strict_refuses_a_cache_built_past_an_undecodable_image(folder, tmp_path):
    """A cache built without --strict records the files it could not decode; reused under --strict it
    used to warn and train, where reading the files themselves stops with an error."""
    from gan.data.decode import ImageReadError

    damage_past_the_header(folder / "05.png")  # the header reads; the pixels are cut short
    with pytest.warns(UserWarning):
        config, _ = build_once(folder, tmp_path)
    config.strict = True
    with pytest.raises(ImageReadError, match=r"1 image file\(s\) could not be decoded when the cache .* was built: "
                                             r"'.*05.png' \(data.strict / --strict makes this an error\)"):
        next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))


def test_a_reused_cache_names_its_undecodable_files_on_one_line_as_the_decoder_does(folder, tmp_path):
    """The decoder's warning names `bad_\\xff\\nname\\x1b[31m.png` on one line; the same file named by a
    reused cache printed a lone surrogate (`\\udcff`), a real line break and a raw terminal escape."""
    from gan.data.decode import ImageReadError

    odd = folder / os.fsdecode(b"bad_\xff\nname\x1b[31m.png")
    (folder / "05.png").rename(odd)
    damage_past_the_header(odd)
    with pytest.warns(UserWarning):
        config, _ = build_once(folder, tmp_path)
    shown = "bad_\\xff\\nname\\x1b[31m.png'"
    with pytest.warns(UserWarning, match="could not be decoded when the cache") as said:
        next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    (message,) = [str(warning.message) for warning in said if "when the cache" in str(warning.message)]
    assert shown in message and message.isprintable(), message
    config.strict = True
    with pytest.raises(ImageReadError) as error:
        next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    assert shown in str(error.value) and str(error.value).isprintable(), str(error.value)


def test_a_file_the_cache_could_not_decode_is_counted_once_when_it_is_read_again(folder, tmp_path):
    # A reused cache counted it, and the first preview, reading it from disk, warned and counted it again:
    # "2 unreadable image file(s) were skipped", of one
    damage_past_the_header(folder / "05.png")
    with pytest.warns(UserWarning):
        config, _ = build_once(folder, tmp_path)
    dataset = build_dataset(config)
    with pytest.warns(UserWarning, match="could not be decoded when the cache") as said:
        next(training_batches(config, dataset, 2, 0, 0, CPU))
        assert dataset.skip_unreadable(dataset.load, 5, len(dataset)) is not None  # (its stand-in, from disk)
    assert dataset.skip_unreadable.num_skipped == 1
    assert not [warning for warning in said if "skipping an unreadable file" in str(warning.message)]


def test_the_cache_build_line_gives_a_small_cache_size_in_a_unit_that_shows_it(folder, tmp_path, capsys):
    # "(0 MiB)" for 10 images of 16 px
    config = config_for(folder, "mmap", tmp_path)
    next(training_batches(config, build_dataset(config), 4, 0, 0, CPU))
    said = capsys.readouterr().err
    assert "decoding 10 images once into the cache" in said and "(7.5 KiB)" in said, said  # 10 x 3 x 16 x 16 bytes


def test_a_slow_cache_build_shows_its_progress_as_it_goes_not_every_500_images(folder, tmp_path, monkeypatch):
    """Large photos or a network disk decode a few a second: the line came every 500th image, a
    silent minute and more (520 photos of 4000 x 2800 px: nothing for 93 s)."""
    from gan.data.image_files import ImageFileDataset

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    load = ImageFileDataset.load

    def slow_load(self, index):
        time.sleep(0.05)
        return load(self, index)

    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(ImageFileDataset, "load", slow_load)
    monkeypatch.setattr(cache_module, "PROGRESS_S", 0.1)
    terminal = Terminal()
    cache_module._build(build_dataset(config_for(folder, "mmap", tmp_path)), tmp_path / "cache.npy", terminal)
    shown = [int(count) for count in re.findall(r"image (\d+)/10", terminal.getvalue())]
    assert len(shown) >= 3 and shown[0] < 10 and shown[-1] == 10 and shown == sorted(shown), terminal.getvalue()


def test_a_cache_array_removed_while_its_structure_is_checked_reads_as_missing(tmp_path, monkeypatch):
    """`gan cache clear` in another shell between the check that the array is a file and its open:
    the stat for the message raised FileNotFoundError, a traceback."""
    import builtins

    array = tmp_path / "0123.npy"
    np.save(array, np.zeros((1, 3, 4, 4), np.uint8))
    real_open = builtins.open

    def removed_first(path, *args, **kwargs):
        if Path(path) == array:
            array.unlink()
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", removed_first)
    assert cache_module.cache_structure_damage(array, {"count": 1, "resolution": 4}) == (None, "is missing")


def test_a_damaged_cache_that_cannot_be_rebuilt_where_it_is_says_which_key_to_change(folder, tmp_path, monkeypatch):
    """On a read-only shared cache found damaged the run said "'....json': Permission denied"."""
    from gan.core.files import WriteError

    config, array = build_once(folder, tmp_path)
    array.write_bytes(array.read_bytes()[:-10])  # cut short
    unlink = Path.unlink

    def read_only(path, *args, **kwargs):
        if path.parent == tmp_path / "cache":
            raise PermissionError(13, "Permission denied", str(path))
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", read_only)
    with pytest.warns(UserWarning, match="rebuilding it"), pytest.raises(WriteError, match=(
            r"the decoded-image cache '.*\.npy' needs building, but its folder data.cache_dir = '.*cache' cannot be "
            r"written \(Permission denied\): set data.cache_dir to a folder you may write, or data.cache = \"off\"")):
        next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))


def test_a_run_with_a_cache_fingerprints_its_files_once(folder, tmp_path, monkeypatch):
    """At 200,000 images each pass over the files' paths and times took seconds, and the check before
    step 1 and the cache's load each took one."""
    import gan.data.image_files

    passes = []
    original = gan.data.image_files.files_fingerprint
    monkeypatch.setattr(gan.data.image_files, "files_fingerprint", lambda paths: passes.append(len(paths)) or
                        original(paths))
    config = tiny_config("data.dataset=folder", f"data.root='{folder}'", "data.resolution=32", "data.cache=mmap",
                         f"data.cache_dir='{tmp_path / 'cache'}'")
    train(config, tmp_path / "built", CPU, progress_stream=sys.stdout)
    train(config, tmp_path / "read", CPU, progress_stream=sys.stdout)  # (the check finds it built)
    assert passes == [10, 10]


def test_the_fingerprint_takes_each_file_by_its_real_path_folders_resolved_once(tmp_path, monkeypatch):
    from gan.data.decode import files_fingerprint

    (tmp_path / "real" / "sub").mkdir(parents=True)
    for index in range(3):
        (tmp_path / "real" / "sub" / f"{index}.png").write_bytes(b"x" * index)
    (tmp_path / "linked").symlink_to(tmp_path / "real" / "sub")
    (tmp_path / "real" / "file_link.png").symlink_to(tmp_path / "real" / "sub" / "1.png")
    (tmp_path / "real" / "broken.png").symlink_to(tmp_path / "missing.png")
    monkeypatch.chdir(tmp_path)
    # the same files, named through a linked folder, a linked file, `..` and a relative path
    direct = [tmp_path / "real" / "sub" / name for name in ("0.png", "1.png", "2.png")]
    named = [Path("linked/0.png"), tmp_path / "real" / "file_link.png", Path("real/../real/sub/2.png")]
    assert files_fingerprint(named) == files_fingerprint(direct)
    assert files_fingerprint([Path("real/broken.png")]) != files_fingerprint([Path("real/sub/0.png")])
    before = files_fingerprint(named)
    (tmp_path / "real" / "sub" / "1.png").write_bytes(b"yy")  # rewritten: seen through the link to it
    assert files_fingerprint(named) != before and files_fingerprint(named) == files_fingerprint(direct)


def test_no_home_folder_for_the_default_caches_is_one_line_saying_what_to_set(tmp_path, monkeypatch):
    """`docker run --user 12345` without HOME: Path.home() raised a bare RuntimeError traceback."""
    from conftest import assert_one_error_line, invoke

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert_one_error_line(invoke("cache", "list"), "there is no home folder to keep gan's caches in", "XDG_CACHE_HOME")
    result = invoke("train", str(Path(__file__).parents[1] / "experiments" / "dcgan_demo.toml"),
                    *[arg for item in ("train.steps=2", "metrics.every=2", "metrics.names=['swd']")
                      for arg in ("--set", item)], "--out", tmp_path / "runs")
    assert result.exit_code != 0 and "there is no home folder to keep gan's caches in" in result.output
    assert "Traceback" not in result.output and "Inception" not in result.output  # (SWD's statistics' folder)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # (passed over, as the XDG specification says)
    assert_one_error_line(invoke("cache", "list"), "there is no home folder")



def unreadable_to_this_user(monkeypatch, header: Path) -> None:
    """Play the cache `header` as one another user wrote under umask 077: this process may not open it."""
    real_open = open

    def refused(path, *args, **kwargs):
        if Path(path) == header:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(cache_module, "_read_header", lambda path: None)  # (what it reads of a file it may not)
    monkeypatch.setattr(cache_module, "open", refused, raising=False)

def test_a_cache_header_another_user_keeps_from_this_one_is_said_so_not_called_damaged(folder, tmp_path, monkeypatch):
    """A shared cache folder written under umask 077 by another user: "is not a JSON object"."""
    config = config_for(folder, "mmap", tmp_path)
    dataset = build_dataset(config)
    from gan.data import data_identity

    cache_module.load_or_build_cache(dataset, data_identity(config), tmp_path / "cache")
    (header,) = (tmp_path / "cache").glob("*.json")
    unreadable_to_this_user(monkeypatch, header)
    with pytest.warns(UserWarning, match=rf"the decoded-image cache header '{header}' cannot be read by this user "
                                         r"\(Permission denied; another user's"):
        cache_module.load_or_build_cache(dataset, data_identity(config), tmp_path / "cache")


def test_a_private_cache_header_of_another_user_in_a_sticky_folder_is_named_not_the_folder(folder, tmp_path,
                                                                                            monkeypatch):
    """Another user's header written under umask 077 in a sticky shared folder, which this user may neither read
    nor remove: the run said its folder "cannot be written (Operation not permitted)", of a folder it may write."""
    from conftest import as_another_users

    config, array = build_once(folder, tmp_path)
    header = array.with_suffix(".json")
    unreadable_to_this_user(monkeypatch, header)
    as_another_users(monkeypatch, header)
    with pytest.warns(UserWarning, match="cannot be read by this user"), pytest.raises(WriteError) as raised:
        next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    said = str(raised.value)
    assert said.startswith(f"the decoded-image cache header '{header}' is another user's ('") and "\n" not in said
    assert ("which this user may neither read nor remove (Operation not permitted), so its cache cannot be rebuilt "
            "there: ask '") in said and "or set data.cache_dir to a folder of your own" in said
    assert "cannot be written" not in said


def test_a_cache_past_the_file_size_limit_says_the_limit_not_a_disk_with_room(folder, tmp_path):
    import subprocess

    code = f"""
import resource
from pathlib import Path
from gan.core.config import DataConfig
from gan.core.files import WriteError
from gan.data import build_dataset, data_identity
from gan.data.cache import load_or_build_cache
config = DataConfig(dataset="folder", root={str(folder)!r}, resolution=16, num_workers=0, cache="mmap")
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    load_or_build_cache(build_dataset(config), data_identity(config), Path({str(tmp_path / 'cache')!r}))
except WriteError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "this process may write files of at most 4,096 bytes (ulimit -f): raise the limit" in result.stdout, \
        result.stdout + result.stderr


def test_a_home_that_is_a_file_is_said_for_the_default_cache_folders(tmp_path, monkeypatch):
    """`gan cache list` showed '/etc/passwd/.cache/gan/decoded: 0 cache(s)'; training named
    metrics.cache_dir, a key the user never set."""
    from conftest import assert_one_error_line, invoke

    home = tmp_path / "home-file"
    home.write_text("")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    assert_one_error_line(invoke("cache", "list"), f"'{home}' is a file, not a folder", "set HOME or XDG_CACHE_HOME")
    result = invoke("train", str(Path(__file__).parents[1] / "experiments" / "dcgan_demo.toml"),
                    *[arg for item in ("train.steps=2", "metrics.every=2", "metrics.names=['swd']")
                      for arg in ("--set", item)], "--out", tmp_path / "runs")
    assert result.exit_code != 0 and "the default cache folder (metrics.cache_dir is unset" in result.output


def test_looking_at_many_files_shows_its_progress(tmp_path, monkeypatch, capsys):
    # the fingerprint of CelebA's 202,599 files took seconds in silence (at the start, and before
    # the first metrics pass)
    import functools

    import gan.data.decode
    from gan.core.progress import DelayedProgress

    monkeypatch.setattr(gan.data.decode, "DelayedProgress", functools.partial(DelayedProgress, after_s=0))
    quiet = gan.data.decode.files_fingerprint([tmp_path / f"{index}.png" for index in range(999)])
    assert capsys.readouterr().err == ""  # (under a thousand: nothing to show)
    said = gan.data.decode.files_fingerprint([tmp_path / f"{index}.png" for index in range(2500)])
    assert "looking at files 2500/2500 (100%)" in capsys.readouterr().err and said != quiet


def test_gan_cache_given_a_pipe_for_its_folder_says_so_not_an_empty_cache(tmp_path):
    """`gan cache verify --dir FIFO` said "no caches to verify" and exit 0: a mistyped path read as an
    empty cache, which the command refuses for a path that does not exist."""
    import os

    from click.testing import CliRunner

    from gan.commands.main import main

    os.mkfifo(tmp_path / "pipe")
    for action in ("list", "verify", "clear"):
        result = CliRunner().invoke(main, ["cache", action, "--dir", str(tmp_path / "pipe")])
        assert result.exit_code == 2 and f"--dir '{tmp_path / 'pipe'}' is not a folder" in result.output, result.output


def test_without_fallocate_a_disk_too_small_for_the_cache_is_an_error_before_a_byte_is_decoded(
        folder, tmp_path, monkeypatch):
    # macOS has no posix_fallocate: the sparse map was written until a page found no room, and the
    # process died of SIGBUS in silence, its temp file of the array's full size left behind.
    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    real_usage = cache_module.shutil.disk_usage
    monkeypatch.setattr(cache_module.shutil, "disk_usage",
                        lambda path: real_usage(path)._replace(free=1000))
    config = config_for(folder, "mmap", tmp_path)
    with pytest.raises(WriteError, match=r"decoded-image cache .*bytes are needed.*data.cache_dir"):
        next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))
    assert not list((tmp_path / "cache").glob("*.npy*"))
    monkeypatch.undo()  # room again, with posix_fallocate: it builds
    assert next(training_batches(config, build_dataset(config), 2, 0, 0, CPU))["image"].shape == (2, 3, 16, 16)


def test_a_cache_slot_of_an_undecodable_file_holds_the_image_standing_in_for_it_uncached(folder, tmp_path):
    """A block of damaged files: each slot holds the stand-in the uncached loader reads, not the next
    readable image in every slot of the block."""
    for index in (3, 4, 5):
        damage_past_the_header(folder / f"{index:02d}.png")
    with pytest.warns(UserWarning):
        config, array_path = build_once(folder, tmp_path)
    cached = np.load(array_path, mmap_mode="r")
    dataset = build_dataset(replace(config, cache="off"))
    with pytest.warns(UserWarning):
        uncached = [np.asarray(dataset.skip_unreadable(dataset.load, index, 10)).transpose(2, 0, 1)
                    for index in range(10)]
    assert all(np.array_equal(cached[index], uncached[index]) for index in range(10))
    stand_ins = {uncached[index].tobytes() for index in (3, 4, 5)}
    assert len(stand_ins) == 3  # (each another image)
