"""PreciseBN: `recompute_batchnorm_statistics` replaces every BatchNorm running average by the plain average of the
batch statistics over the given batches (checked against statistics captured independently with forward hooks),
restores momentum and mode, and makes eval-mode embeddings follow the weights after fast training steps."""

import numpy as np
import torch

from tamer_hf.testing_utils import tiny_model_and_processor
from tamer_hf.training import precise_bn_batches, recompute_batchnorm_statistics


def batchnorms(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def test_statistics_equal_the_average_of_the_batch_statistics():
    torch.manual_seed(0)
    model, _ = tiny_model_and_processor()
    batches = [torch.rand(4, 12, 5000) * (1 + k) for k in range(3)]  # batches with different scales
    captured = {id(norm): [] for norm in batchnorms(model)}

    def capture(module, inputs, _output):
        x = inputs[0].detach().double()
        dims = [0] + list(range(2, x.ndim))  # all but the channel axis
        captured[id(module)].append((x.mean(dim=dims), x.var(dim=dims, unbiased=True)))

    with torch.no_grad():  # the statistics each batch produces, before any recomputation
        model.train()
        hooks = [norm.register_forward_hook(capture) for norm in batchnorms(model)]
        for batch in batches:
            model.encode_ecg(batch)
        for hook in hooks:
            hook.remove()
    for norm in batchnorms(model):  # stale averages, as after fast training
        norm.running_mean.fill_(5.0)
        norm.running_var.fill_(7.0)
    model.eval()

    assert recompute_batchnorm_statistics(model, iter(batches)) == 3
    assert not model.training  # mode restored
    for norm in batchnorms(model):
        means = torch.stack([m for m, _ in captured[id(norm)]]).mean(0)
        variances = torch.stack([v for _, v in captured[id(norm)]]).mean(0)
        torch.testing.assert_close(norm.running_mean.double(), means, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(norm.running_var.double(), variances, rtol=1e-4, atol=1e-5)
        assert norm.momentum == 0.1


def test_eval_embeddings_follow_the_weights_after_recomputation():
    """After large weight changes the stale running averages give eval embeddings far from the train-mode ones on
    the same data; recomputed statistics bring them back (the failure PreciseBN fixes in short runs)."""
    torch.manual_seed(1)
    model, _ = tiny_model_and_processor()
    data = torch.rand(16, 12, 5000)
    with torch.no_grad():
        for parameter in model.ecg_encoder.parameters():  # a "training step" that moves the weights a lot
            parameter.mul_(3.0).add_(0.05)
        model.train()
        reference = model.ecg_encoder(data)  # train mode: normalised by this batch's own statistics
        model.eval()
        stale = model.ecg_encoder(data)
        recompute_batchnorm_statistics(model, [data])
        model.eval()
        recomputed = model.ecg_encoder(data)
    stale_error = (stale - reference).abs().mean().item()
    recomputed_error = (recomputed - reference).abs().mean().item()
    assert recomputed_error < 0.05 * stale_error, (stale_error, recomputed_error)


def test_batches_are_the_first_rows_in_stored_order():
    from datasets import Dataset

    from tamer_hf import TamerFeatureExtractor

    # row k's ECG holds the value k everywhere, so each batch's input_values say which rows it holds
    rows = Dataset.from_dict({"ecg": [np.full((12, 5000), k, np.float32) for k in range(10)]}).with_format("numpy")
    extractor = TamerFeatureExtractor(normalization="none")

    out = list(precise_bn_batches(rows, extractor, batch_size=3, num_batches=2))
    assert [batch[:, 0, 0].tolist() for batch in out] == [[0, 1, 2], [3, 4, 5]]
    assert out[0].shape == (3, 12, 5000)
    assert len(list(precise_bn_batches(rows, extractor, batch_size=4, num_batches=5))) == 2  # only full batches
