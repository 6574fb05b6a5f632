"""Start the training loop in one or several processes.

Three ways in, one code path per process (`run_process`):
* `torchrun` (environment variables `WORLD_SIZE`, `RANK`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`):
  this process is one rank; the process group is initialised from the environment.
* `num_gpus == 1`: run in this process as rank 0.
* `num_gpus > 1`: spawn that many processes (start method 'spawn', never set globally) that meet
  through a `file://` rendezvous in a temporary directory.
NCCL is used on CUDA devices and gloo on CPU, where `num_gpus` simply means the number of processes.
"""
import os
import re
import tempfile
from typing import Any, Dict, Optional

import torch

import dnnlib
from stylegan_unlearn.device import rank_device, resolve_device
from stylegan_unlearn.loop.training_loop import training_loop
from torch_utils import custom_ops, training_stats

__all__ = ["launch_training", "run_process", "torchrun_environment", "choose_device_type", "LaunchError"]


class LaunchError(RuntimeError):
    """A training process failed; the message is the failing process's own error sentence."""


def torchrun_environment() -> Optional[Dict[str, int]]:
    """`rank`, `local_rank`, `world_size` when started by torchrun (or any env:// launcher), else None."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return None
    return dict(rank=int(os.environ["RANK"]), local_rank=int(os.environ.get("LOCAL_RANK", os.environ["RANK"])),
                world_size=int(os.environ["WORLD_SIZE"]))


def choose_device_type(requested: Optional[str], num_gpus: int) -> str:
    """'cuda' or 'cpu' for `requested` in {None/'auto', 'cuda', 'cpu'} (`stylegan_unlearn.device`); ValueError
    if CUDA cannot serve `num_gpus` processes."""
    if (requested or "auto").lower() not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device must be auto, cuda or cpu, got '{requested}'")
    return resolve_device(requested, num_devices=num_gpus).type


def run_process(rank: int, training_args: Dict[str, Any], num_gpus: int, device_type: str,
                init_method: Optional[str], local_rank: Optional[int] = None) -> Dict[str, Any]:
    """Set up one rank (log file, process group, statistics) and run the training loop in it."""
    local_rank = rank if local_rank is None else local_rank
    device = rank_device(local_rank, device_type)
    logger = None
    if rank == 0:
        logger = dnnlib.util.Logger(file_name=os.path.join(training_args["run_dir"], "log.txt"), file_mode="a",
                                    should_flush=True)
    try:
        if num_gpus > 1:
            if device_type == "cuda":
                torch.cuda.set_device(device)
            backend = "nccl" if device_type == "cuda" and os.name != "nt" else "gloo"
            if not torch.distributed.is_initialized():
                torch.distributed.init_process_group(backend=backend, init_method=init_method, rank=rank,
                                                     world_size=num_gpus)
            training_stats.init_multiprocessing(rank=rank, sync_device=device)
        if rank != 0:
            custom_ops.verbosity = "none"
        result = training_loop(rank=rank, num_gpus=num_gpus, device=device, **training_args)
        if num_gpus > 1:
            # Every rank finishes its last collective before any tears the group down; a gloo rank whose
            # peer already destroyed the group can abort at exit (SIGABRT) after a complete run.
            torch.distributed.barrier()
        return result
    finally:
        if num_gpus > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        if logger is not None:
            logger.close()


def _spawned(rank: int, training_args: Dict[str, Any], num_gpus: int, device_type: str, init_file: str) -> None:
    run_process(rank, training_args, num_gpus, device_type, init_method="file://" + init_file)


def _last_error_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception|Exit)\b.*:", line.strip()):
            return line.strip()
    return lines[-1].strip() if lines else "unknown error"


def launch_training(training_args: Dict[str, Any], num_gpus: int = 1, device_type: str = "cpu") -> Optional[dict]:
    """Run `training_loop(**training_args)` on `num_gpus` ranks; returns rank 0's summary when it ran here.

    Raises `LaunchError` carrying the child's error sentence if a spawned process fails.
    """
    env = torchrun_environment()
    if env is not None:
        if env["world_size"] != num_gpus and num_gpus != 1:
            raise ValueError(f"torchrun started {env['world_size']} processes but --gpus={num_gpus}; "
                             "pass --gpus=1 (or the same number) under torchrun")
        return run_process(env["rank"], training_args, env["world_size"], device_type, init_method="env://",
                           local_rank=env["local_rank"])
    if num_gpus == 1:
        return run_process(0, training_args, 1, device_type, init_method=None)
    with tempfile.TemporaryDirectory() as temp_dir:
        init_file = os.path.abspath(os.path.join(temp_dir, ".torch_distributed_init"))
        try:
            torch.multiprocessing.spawn(_spawned, args=(training_args, num_gpus, device_type, init_file),
                                        nprocs=num_gpus, join=True, start_method="spawn")
        except torch.multiprocessing.ProcessRaisedException as err:
            raise LaunchError(_last_error_line(str(err))) from None
        except torch.multiprocessing.ProcessExitedException as err:
            raise LaunchError(f"a training process died ({err}); see log.txt in the run directory") from None
    return None

