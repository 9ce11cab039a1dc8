"""Shared decoder blocks: selective scan, SS2D scan orders, deformable attention, TCS, both decoder kinds."""

import pytest
import torch

from perception.models.decoder.deformable_attention import DeformableAttention2D
from perception.models.decoder.selective_scan import selective_scan, selective_scan_chunked, selective_scan_ref
from perception.models.decoder.shared_decoder import SharedDecoder, bev_reference_points
from perception.models.decoder.ss2d import SS2D, invert_order, merge_orders, scan_orders
from perception.models.decoder.tcs import TaskChannelScaling
from perception.models.queries.position import PositionEmbedding


def _scan_inputs(b=2, d=6, L=23, n=4, g=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mk = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    return dict(
        u=mk(b, d, L), delta=mk(b, d, L), A=-torch.rand(d, n, generator=gen, dtype=torch.float64) * 4,
        B=mk(b, g, n, L), C=mk(b, g, n, L), D=mk(d), delta_bias=mk(d),
    )


@pytest.mark.parametrize("chunk_size", [None, 1, 5, 23, 40])
def test_chunked_scan_equals_sequential_reference(chunk_size):
    args = _scan_inputs()
    ref = selective_scan_ref(**args, delta_softplus=True)
    out = selective_scan_chunked(**args, delta_softplus=True, chunk_size=chunk_size)
    assert torch.allclose(out, ref, atol=1e-10)


def test_chunked_scan_gradients_equal_reference():
    a1 = {k: v.clone().requires_grad_(True) for k, v in _scan_inputs(L=17).items()}
    a2 = {k: v.clone().requires_grad_(True) for k, v in _scan_inputs(L=17).items()}
    w = torch.randn(2, 6, 17, dtype=torch.float64)
    (selective_scan_ref(**a1, delta_softplus=True) * w).sum().backward()
    (selective_scan_chunked(**a2, delta_softplus=True, chunk_size=4) * w).sum().backward()
    for k in a1:
        assert torch.allclose(a1[k].grad, a2[k].grad, atol=1e-9), k


def test_scan_without_groups_and_cpu_dispatch():
    args = _scan_inputs(g=1)
    args["B"], args["C"] = args["B"][:, 0], args["C"][:, 0]  # (b, n, l) form
    ref = selective_scan_ref(**args)
    assert torch.allclose(selective_scan(**args), ref, atol=1e-10)
    with pytest.raises(ValueError, match="bad shapes"):
        selective_scan_ref(args["u"], args["delta"], args["A"][:, :2], args["B"], args["C"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="mamba-ssm's kernel runs on CUDA only (device machine)")
@pytest.mark.parametrize("groups", [1, 2])
def test_mamba_ssm_kernel_equals_reference(groups):
    """The fused CUDA kernel (what ``selective_scan`` dispatches to on a GPU) against the sequential reference,
    outputs and gradients, in float32 at the decoder's sizes (d 4 x 64 channels, n 16, L = 64 x 64 BEV tokens)."""
    pytest.importorskip("mamba_ssm", reason="optional extra: pip install .[cuda] on a CUDA machine")
    from perception.models.decoder import selective_scan as scan_module

    assert scan_module._cuda_selective_scan_fn is not None
    args = {k: v.float().cuda() for k, v in _scan_inputs(b=2, d=256, L=4096, n=16, g=groups).items()}
    a1 = {k: v.clone().requires_grad_(True) for k, v in args.items()}
    a2 = {k: v.clone().requires_grad_(True) for k, v in args.items()}
    out = selective_scan(**a1, delta_softplus=True)  # the kernel
    ref = selective_scan_ref(**a2, delta_softplus=True)
    assert torch.allclose(out, ref, rtol=1e-3, atol=1e-3), (out - ref).abs().max()
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (ref * w).sum().backward()
    for k in a1:
        assert torch.allclose(a1[k].grad, a2[k].grad, rtol=1e-2, atol=1e-2), k


def test_scan_orders_and_inverse():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)  # (B, D, X=4, Y=5)
    seqs = scan_orders(x)
    assert seqs.shape == (2, 4, 3, 20)
    assert seqs[0, 0, 0, 1] == x[0, 0, 0, 1]  # row-major: second token steps along y
    assert seqs[0, 1, 0, 1] == x[0, 0, 1, 0]  # column-major: second token steps along x
    assert seqs[0, 2, 0, 0] == x[0, 0, 3, 4] and seqs[0, 3, 0, 1] == x[0, 0, 2, 4]  # reversed orders
    for k in range(4):
        assert torch.equal(invert_order(seqs[:, k], k, 4, 5), x)
    assert torch.equal(merge_orders(seqs, 4, 5), 4 * x)


def test_ss2d_shape_and_directional_params():
    torch.manual_seed(0)
    block = SS2D(8)
    x = torch.randn(1, 8, 5, 6, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert block.x_proj_weight.shape[0] == 4 and block.A_log.shape == (4 * 16, 16)
    assert block.x_proj_weight.grad.abs().sum(dim=(1, 2)).gt(0).all()  # every order's params get gradient
    # the token at the grid's last cell influences the first cell (through the reversed scans)
    assert x.grad[0, :, -1, -1].abs().sum() > 0


def test_deformable_attention_reads_at_reference_point():
    torch.manual_seed(0)
    attn = DeformableAttention2D(4, num_heads=2, num_points=3)
    torch.nn.init.zeros_(attn.sampling_offsets.bias)  # all points on the reference
    with torch.no_grad():  # identity value and output projections
        attn.value_proj.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        attn.output_proj.weight.copy_(torch.eye(4))
        attn.value_proj.bias.zero_()
        attn.output_proj.bias.zero_()
    value = torch.zeros(1, 4, 6, 8)
    value[0, :, 4, 1] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # cell ix=4, iy=1
    ref = torch.tensor([[[4.5 / 6, 1.5 / 8], [1.5 / 6, 4.5 / 8]]])
    out = attn(torch.randn(1, 2, 4), ref, value)
    assert torch.allclose(out[0, 0], torch.tensor([1.0, 2.0, 3.0, 4.0]), atol=1e-6)
    assert torch.allclose(out[0, 1], torch.zeros(4), atol=1e-6)


def test_tcs_starts_as_identity_and_is_per_task():
    tcs = TaskChannelScaling(8, ("det", "map"))
    bev = torch.randn(2, 8, 3, 4)
    out = tcs(bev)
    assert set(out) == {"det", "map"} and torch.allclose(out["det"], bev)
    torch.nn.init.normal_(tcs.gates["map"][2].weight)
    out = tcs(bev)
    assert torch.allclose(out["det"], bev) and not torch.allclose(out["map"], bev)


@pytest.mark.parametrize("kind", ["transformer", "mamba"])
def test_shared_decoder_both_kinds(kind):
    torch.manual_seed(0)
    dec = SharedDecoder(kind, ("det", "occ"), num_layers=2, d_model=16, num_heads=2, ffn_dim=32)
    bev = torch.randn(1, 16, 8, 6, requires_grad=True)
    queries = {"det": torch.randn(1, 5, 16), "occ": torch.randn(1, 3, 16)}
    refs = {"det": torch.rand(1, 5, 2), "occ": torch.rand(1, 3, 2)}
    task_bevs, out = dec(bev, queries, refs, PositionEmbedding(16))
    assert out["det"].shape == (1, 5, 16) and out["occ"].shape == (1, 3, 16)
    assert task_bevs["det"].shape == (1, 16, 8, 6)
    out["det"].sum().backward()
    assert bev.grad.abs().sum() > 0  # queries read the BEV


def test_decoder_rejects_unknown_kind():
    with pytest.raises(ValueError, match="decoder must be one of"):
        SharedDecoder("lstm", ("det",), 1, 8, 2, 16)


def test_bev_reference_points_x_first():
    ref = bev_reference_points(2, 3)
    assert torch.allclose(ref[0, 1], torch.tensor([0.25, 0.5]))  # index 1 = (ix 0, iy 1)
    assert torch.allclose(ref[0, 3], torch.tensor([0.75, 1 / 6]))


def test_map_query_mask_keeps_strip_and_class_neighbours_only():
    from perception.models.queries.map_queries import MapQueryInit

    init = MapQueryInit(8, num_strips=5, num_classes=6)
    mask = init.attention_mask()
    assert mask.shape == (30, 30) and not mask.diagonal().any()
    # query (strip 1, class 2) = index 8: sees its strip's 6 classes and its class's 5 strips (itself once)
    allowed = (~mask[8]).nonzero().squeeze(1).tolist()
    assert allowed == sorted({6, 7, 8, 9, 10, 11} | {2, 8, 14, 20, 26})


def test_masked_query_self_attention_isolates_unrelated_queries():
    """With the map mask, changing query (strip 0, class 0) cannot change query (strip 1, class 1) after a
    layer's self-attention; without the mask it does."""
    from perception.models.queries.map_queries import MapQueryInit

    torch.manual_seed(0)
    dec = SharedDecoder("transformer", ("map",), 1, 16, 4, 32).eval()
    pos = PositionEmbedding(16)
    bev = torch.randn(1, 16, 8, 8)
    q = torch.randn(1, 30, 16)
    ref = torch.rand(1, 30, 2)
    q2 = q.clone()
    q2[0, 0] += 5.0
    mask = MapQueryInit(16, 5, 6).attention_mask()
    with torch.no_grad():
        a = dec(bev, {"map": q}, {"map": ref}, pos, {"map": mask})[1]["map"]
        b = dec(bev, {"map": q2}, {"map": ref}, pos, {"map": mask})[1]["map"]
        c = dec(bev, {"map": q2}, {"map": ref}, pos)[1]["map"]
    assert torch.allclose(a[0, 7], b[0, 7], atol=1e-6)  # index 7 = strip 1, class 1: unrelated to index 0
    assert not torch.allclose(a[0, 7], c[0, 7], atol=1e-4)
    assert not torch.allclose(a[0, 6], b[0, 6], atol=1e-4)  # index 6 = strip 1, class 0: same class
