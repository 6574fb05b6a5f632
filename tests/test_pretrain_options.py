"""The MNIST pretraining leaves a StyleGAN-style training_options.json beside its snapshots, so that
adapt/unlearn on one of them fine-tune with the pretraining's own loss settings."""
import json
import os

from stylegan_unlearn.loop import snapshots
from stylegan_unlearn.method import recipe
from stylegan_unlearn.mnist import pretrain


def test_pretraining_run_folder_records_the_loss_settings_adapt_and_unlearn_take_over(tmp_path):
    cfg = dict(batch=4, cmax=8, guide_epochs=1, gamma=0.5, pl_weight=0.0, style_mixing=0.25, aug="")
    pretrain.pretrain(str(tmp_path), kimg=0.008, chunk_kimg=0.008, cfg=cfg, log=lambda _: None)
    run_dir = tmp_path / pretrain.RUN_SUBDIR
    options = json.loads((run_dir / "training_options.json").read_text())
    assert options["loss_kwargs"]["r1_gamma"] == 0.5 and options["total_kimg"] == 0.008
    snapshot = snapshots.find_latest_snapshot(str(run_dir))
    values, source = recipe.pretraining_values(snapshot)
    assert values == dict(gamma=0.5, pl_weight=0.0, style_mixing=0.25)
    assert source == os.path.join(str(run_dir), "training_options.json")
