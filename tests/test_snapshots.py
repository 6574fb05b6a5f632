"""Snapshots that are safe to resume from: sidecars hold only data and are bound to their pkl, kills leave
nothing misleading behind, names never collide, nothing non-finite is written, worker errors are one line."""
import copy
import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from stylegan_unlearn import fileio
from stylegan_unlearn.data import write_image_dataset
from stylegan_unlearn.loop import snapshots, training_loop
from stylegan_unlearn.loop.training_loop import _next_batch
from stylegan_unlearn.pkl import NetworkPklError, save_network_pkl
from test_training_loop import latest, tiny_args
from tiny import WIDE, tiny_networks

REPO_ROOT = Path(__file__).resolve().parents[1]


def tiny_modules(seed=0):
    G, D = tiny_networks(seed, img_channels=3, **WIDE)
    return dict(G=G, D=D, G_ema=copy.deepcopy(G), augment_pipe=None, training_set_kwargs=None)


def tiny_state(cur_nimg):
    opt = torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), betas=(0.0, 0.99))
    return dict(cur_nimg=cur_nimg, cur_tick=1, batch_idx=2, optimizers=dict(G=opt.state_dict()),
                loss=dict(pl_mean=torch.zeros([])), augment_p=None, run_key=dict(loss="x", data="y"))


@pytest.fixture(scope="module")
def data_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.zip"
    write_image_dataset(str(path), np.random.RandomState(0).randint(0, 256, (8, 16, 16, 3), dtype=np.uint8))
    return path


class RunsCode:
    """Unpickling this runs a shell command: what a malicious sidecar would hold."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def test_a_sidecar_holding_code_is_never_run(data_zip, tmp_path, capsys):
    first = tmp_path / "first"
    training_loop(**tiny_args(data_zip, first, total_kimg=0.004))
    pkl = latest(first)
    marker = tmp_path / "pwned"
    state = dict(snapshots.load_sidecar(pkl), payload=RunsCode(marker))
    torch.save(state, snapshots.sidecar_path(pkl))
    torch.load(snapshots.sidecar_path(pkl), weights_only=False)  # the file really does run code when unpickled
    assert marker.exists()
    marker.unlink()

    warnings = []
    assert snapshots.load_sidecar(pkl, warn=warnings.append) is None
    assert len(warnings) == 1 and "holds more than tensors and plain data" in warnings[0]
    capsys.readouterr()
    summary = training_loop(**tiny_args(data_zip, tmp_path / "second", resume_pkl=pkl, total_kimg=0.004))
    assert not marker.exists()
    assert summary["cur_nimg"] == 4  # started fresh from the pkl's weights, not at the sidecar's kimg
    log = capsys.readouterr().out
    assert log.count("Warning: ignoring the resume state") == 1 and "Continuing at kimg" not in log


def test_sidecar_is_plain_data_readable_with_weights_only(tmp_path):
    path = str(tmp_path / "network-snapshot-000000.pkl")
    snapshots.save_snapshot(path, tiny_modules(), tiny_state(8))
    raw = torch.load(snapshots.sidecar_path(path), weights_only=True)  # would raise on any non-data object
    assert raw["cur_nimg"] == 8 and len(raw["pkl_sha256"]) == 64
    with pytest.raises(ValueError, match="cannot hold state.loss.extra"):
        snapshots.save_snapshot(path, tiny_modules(), dict(tiny_state(8), loss=dict(extra=object())))


def test_a_sidecar_beside_another_pkl_is_ignored_with_one_warning(data_zip, tmp_path):
    first = tmp_path / "first"
    training_loop(**tiny_args(data_zip, first))
    pkls = sorted(str(p) for p in first.glob("network-snapshot-*.pkl"))
    assert len(pkls) == 3
    os.replace(snapshots.sidecar_path(pkls[-1]), snapshots.sidecar_path(pkls[0]))  # 16-image state, 4-image pkl
    warnings = []
    assert snapshots.load_sidecar(pkls[0], warn=warnings.append) is None
    assert len(warnings) == 1 and "belongs to other contents" in warnings[0]
    second = tmp_path / "second"
    summary = training_loop(**tiny_args(data_zip, second, resume_pkl=pkls[0], total_kimg=0.004))
    assert summary["cur_nimg"] == 4


def test_a_kill_between_sidecar_and_pkl_never_resumes_the_wrong_weights(tmp_path, monkeypatch):
    path = str(tmp_path / "network-snapshot-000000.pkl")
    snapshots.save_snapshot(path, tiny_modules(0), tiny_state(4))
    assert snapshots.load_sidecar(path)["cur_nimg"] == 4

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt  # the process dies after the sidecar's rename, before the pkl's

    monkeypatch.setattr(snapshots, "atomic_write_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        snapshots.save_snapshot(path, tiny_modules(1), tiny_state(8))
    assert torch.load(snapshots.sidecar_path(path), weights_only=True)["cur_nimg"] == 8  # new sidecar, old pkl
    warnings = []
    assert snapshots.load_sidecar(path, warn=warnings.append) is None
    assert "belongs to other contents" in warnings[0]


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_of_a_killed_write_are_removed_on_the_next_start(data_zip, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    writer = ("import sys, time\n"
              "from stylegan_unlearn.fileio import atomic_write\n"
              "with atomic_write(sys.argv[1], 'wb') as f:\n"
              "    f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(60)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-c", writer, str(run_dir / "network-snapshot-000000.pkl")],
                            env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed = [p.name for p in run_dir.iterdir()]
    assert len(killed) == 1 and killed[0].startswith(".network-snapshot-000000.pkl.") and killed[0].endswith(".tmp")
    host = fileio._host_tag()
    live = run_dir / f".fakes000000.png.{host}.{os.getpid()}.abcd1234.tmp"  # a write still in progress
    other_host = run_dir / f".x.pkl.some-other-host.{_dead_pid()}.abcd1234.tmp"  # maybe live on a shared disk
    live.write_bytes(b"")
    other_host.write_bytes(b"")

    training_loop(**tiny_args(data_zip, run_dir, total_kimg=0.004))
    names = {p.name for p in run_dir.iterdir()}
    assert killed[0] not in names
    assert live.name in names and other_host.name in names


def test_snapshot_names_never_collide_and_the_latest_is_found(tmp_path):
    written = []
    for nimg in (4, 12, 16, 1000, 1004, 1500, 2008, 12000):
        path = snapshots.snapshot_path(str(tmp_path), nimg)
        assert not os.path.exists(path)
        Path(path).touch()
        written.append(os.path.basename(path))
        assert snapshots.find_latest_snapshot(str(tmp_path)) == path
    assert written == ["network-snapshot-000000.pkl", "network-snapshot-000000.012.pkl",
                       "network-snapshot-000000.016.pkl", "network-snapshot-000001.pkl",
                       "network-snapshot-000001.004.pkl", "network-snapshot-000001.500.pkl",
                       "network-snapshot-000002.pkl", "network-snapshot-000012.pkl"]
    assert os.path.basename(snapshots.image_grid_path(str(tmp_path), 1004)) == "fakes000001.png"


def test_networks_with_non_finite_values_are_never_written(tmp_path):
    data = tiny_modules()
    with torch.no_grad():
        next(data["G_ema"].parameters()).fill_(float("nan"))
    path = tmp_path / "broken.pkl"
    with pytest.raises(NetworkPklError, match="G_ema is broken, .* NaN or infinite .*nothing was written"):
        save_network_pkl(path, data)
    with pytest.raises(NetworkPklError, match="nothing was written"):
        snapshots.save_snapshot(str(path), data, tiny_state(4))
    assert list(tmp_path.iterdir()) == []


class FailingDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        raise ValueError(f"cannot read image 'img{index}.png' in 'data.zip': broken data stream")


def test_errors_in_dataloader_workers_come_back_as_their_own_line():
    loader = torch.utils.data.DataLoader(FailingDataset(), batch_size=2, num_workers=1)
    with pytest.raises(ValueError) as info:
        _next_batch(iter(loader))
    assert str(info.value).startswith("cannot read image 'img") and "\n" not in str(info.value)
    assert "DataLoader worker" not in str(info.value)


def test_a_corrupt_image_met_by_a_worker_stops_training_with_one_line(tmp_path):
    path = tmp_path / "corrupt.zip"
    write_image_dataset(str(path), np.random.RandomState(0).randint(0, 256, (8, 16, 16, 3), dtype=np.uint8))
    order = np.arange(8)
    np.random.RandomState(0).shuffle(order)
    bad = int(order[-1])  # not among the 2x2 grid's images, which the main process reads itself
    entries = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            entries[name] = archive.read(name)
    bad_name = f"00000/img{bad:08d}.png"
    entries[bad_name] = entries[bad_name][:40]  # a truncated PNG
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, blob in entries.items():
            archive.writestr(name, blob)
    path.write_bytes(buffer.getvalue())
    args = tiny_args(path, tmp_path / "run", total_kimg=0.1, data_loader_kwargs=dict(num_workers=2))
    started = time.time()
    with pytest.raises(ValueError) as info:
        training_loop(**args)
    message = str(info.value)
    assert f"cannot read image '{bad_name}'" in message and "\n" not in message, message
    assert "DataLoader worker" not in message and time.time() - started < 300


def test_sidecars_of_older_versions_are_read_as_data_with_a_warning(tmp_path):
    path = str(tmp_path / "network-snapshot-000004.pkl")
    save_network_pkl(path, tiny_modules())
    torch.save(dict(tiny_state(4000), version=1), snapshots.sidecar_path(path))  # as written before binding
    warnings = []
    assert snapshots.load_sidecar(path, warn=warnings.append)["cur_nimg"] == 4000
    assert len(warnings) == 1 and "did not bind it to its pkl" in warnings[0]
    torch.save(dict(tiny_state(4000), version=1, payload=RunsCode(tmp_path / "pwned")), snapshots.sidecar_path(path))
    assert snapshots.load_sidecar(path, warn=warnings.append) is None
    assert not (tmp_path / "pwned").exists()
