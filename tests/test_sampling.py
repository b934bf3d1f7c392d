"""train.sampling: per-epoch reshuffling (the default, every stored run) and with-replacement
sampling (bs i.i.d. uniform indices per step, the sampling of the SGD theorems), each against a
hand-written loop over the same random stream; the strong-growth constant of a batch under each;
run ids of the default unchanged."""
import copy

import pandas as pd
import pytest
import torch

import datasets
import models
from experiments import runid, seeding
from experiments.store import RunDir
from experiments.train import execute
from tests.conftest import LSTSQ_FAST

LR, N, BS, EPOCHS = 0.05, 40, 4, 2


def _by_hand(cfg, sampling):
    """SGD (torch.optim) on the batches ``sampling`` draws from the trainer's order stream."""
    seed = int(cfg["seed"])
    data = datasets.load(cfg["dataset"], cfg["paths"]["data_dir"], seeding.generator(seed, "data"))
    torch.manual_seed(seeding.stream_seed(seed, "init"))
    model = models.build(cfg["model"], data)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    order = seeding.generator(seed, "order", torch.device("cpu"))
    drawn = []
    for epoch in range(EPOCHS):
        perm = torch.randperm(N, generator=order) if sampling == "reshuffle" else None
        for k in range(N // BS):
            idx = (perm[k * BS:(k + 1) * BS] if perm is not None
                   else torch.randint(N, (BS,), generator=order))
            drawn.append(idx)
            opt.zero_grad()
            loss = 0.5 * ((model(data.x_train[idx]).squeeze(-1) - data.y_train[idx]) ** 2).mean()
            loss.backward()
            opt.step()
    return model.state_dict(), torch.cat(drawn)


@pytest.mark.parametrize("sampling", ["reshuffle", "with_replacement"])
def test_the_trainer_draws_the_batches_of_its_sampling(compose_cfg, tmp_path, sampling):
    cfg = compose_cfg(*LSTSQ_FAST, "optimizer=sgd", f"optimizer.lr={LR}", f"train.epochs={EPOCHS}",
                      f"train.sampling={sampling}", "train.save_model=true")
    s = execute(cfg)
    assert s["steps"] == EPOCHS * N // BS
    got = torch.load(RunDir(tmp_path / "results", runid.run_id(cfg)).path / "model_final.pt")
    want, drawn = _by_hand(cfg, sampling)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-10, atol=1e-12)
    counts = torch.bincount(drawn, minlength=N)
    if sampling == "reshuffle":
        assert torch.all(counts == EPOCHS)          # every example once per epoch
    else:
        assert counts.max() > EPOCHS and (counts == 0).any()   # repeats and misses: i.i.d. draws


def test_loss_of_the_hand_loop_is_the_trainers(compose_cfg, tmp_path):
    """The hand loop's 0.5 * squared error is the lstsq loss the trainer logs at step 0."""
    cfg = compose_cfg(*LSTSQ_FAST, "optimizer=sgd", f"optimizer.lr={LR}", "train.epochs=1")
    s = execute(cfg)
    data = datasets.load(cfg["dataset"], cfg["paths"]["data_dir"], seeding.generator(0, "data"))
    torch.manual_seed(seeding.stream_seed(0, "init"))
    model = models.build(cfg["model"], data)
    with torch.no_grad():
        f0 = float(0.5 * ((model(data.x_train).squeeze(-1) - data.y_train) ** 2).mean())
    m = pd.read_parquet(RunDir(tmp_path / "results", runid.run_id(cfg)).path / "metrics.parquet")
    assert m["train/loss"].iloc[0] == pytest.approx(f0, rel=1e-12) and s["status"] == "completed"


@pytest.mark.parametrize("sampling,shrink", [
    ("reshuffle", lambda n, b: (n - b) / (b * (n - 1))),      # b of n without replacement
    ("with_replacement", lambda n, b: 1 / b),                  # b i.i.d. draws
])
def test_strong_growth_constant_of_a_batch(compose_cfg, sampling, shrink):
    cfg = compose_cfg("dataset=lstsq", "dataset.n=30", "dataset.d_over_n=2", "model.bias=false",
                      "train.batch_size=5", "train.epochs=1", f"train.sampling={sampling}")
    s = execute(cfg)
    rho = s["data_info"]["rho"]
    assert rho > 1
    assert s["data_info"]["rho_b"] == pytest.approx(1 + shrink(30, 5) * (rho - 1), rel=1e-12)


def test_the_default_sampling_keeps_the_run_ids_of_runs_stored_before_it(compose_cfg):
    cfg = compose_cfg(*LSTSQ_FAST)
    assert cfg["train"]["sampling"] == "reshuffle"
    before = copy.deepcopy(cfg)
    del before["train"]["sampling"]                 # what every earlier run's config held
    assert runid.run_id(cfg) == runid.run_id(before)
    other = compose_cfg(*LSTSQ_FAST, "train.sampling=with_replacement")
    assert runid.run_id(other) != runid.run_id(cfg)
