"""RT-DETR v4 as ComfyUI's RTDETR_detect runs it (comfy/ldm/rt_detr/rtdetr_v4.py, comfy_extras/nodes_rtdetr.py),
against transformers' D-FINE (the same network: HGNetv2, the CSP-ELAN hybrid encoder, D-FINE's decoder) on the
same tiny random weights, written out in ComfyUI's key layout as ComfyUI's file has it: the encoder's batch norms
folded into its convolutions, each RepVGG pair folded into one 3x3 convolution, the decoder heads renamed. ComfyUI's
MLPs put SiLU between their layers where transformers' D-FINE puts ReLU, so the reference's are set to SiLU."""
from __future__ import annotations

import re

import numpy as np
import pytest


def _tiny_dfine():
    import torch
    from torch import nn
    from transformers import DFineConfig, DFineForObjectDetection, HGNetV2Config
    from transformers.models.d_fine.modeling_d_fine import DFineMLP
    torch.manual_seed(0)
    backbone = HGNetV2Config(stem_channels=[3, 8, 8], stage_in_channels=[8, 16, 32, 32],
                             stage_mid_channels=[8, 8, 16, 16], stage_out_channels=[16, 32, 32, 64],
                             stage_num_blocks=[1, 1, 2, 1], stage_downsample=[False, True, True, True],
                             stage_light_block=[False, False, True, True], stage_kernel_size=[3, 3, 5, 5],
                             stage_numb_of_layers=[2, 2, 2, 2], out_indices=[2, 3, 4], hidden_sizes=[16, 32, 32, 64])
    config = DFineConfig(backbone_config=backbone, encoder_in_channels=[32, 32, 64], encoder_hidden_dim=32,
                         encoder_ffn_dim=64, d_model=32, decoder_in_channels=[32, 32, 32], decoder_ffn_dim=64,
                         decoder_layers=3, decoder_n_points=[3, 6, 3], num_labels=80, reg_scale=8.0, depth_mult=0.34,
                         hidden_expansion=0.5)
    model = DFineForObjectDetection(config).eval()
    with torch.no_grad():      # every weight random at its fan-in's scale (D-FINE starts its box heads at 0, its
        for name, t in model.named_parameters():          # convolutions near it), and the norms' statistics
            if t.dim() > 1:
                t.normal_(0, t[0].numel() ** -0.5)
            elif not name.endswith(("decoder.up", "decoder.reg_scale")):
                t.normal_(0, 0.1)
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith(("running_mean", "normalization.bias", "norm.bias")):
                t.normal_(0, 0.1)
            elif name.endswith(("normalization.weight", "norm.weight")) and t.dim() == 1:
                t.uniform_(0.5, 1.5)
        # the cells off the picture's edge (their memory zeroed) all score alike: kept under the others, as a
        # trained detector's are, so which 300 queries are picked does not hang on how ties are broken
        model.model.enc_output[0].bias.zero_()
        model.model.enc_output[1].bias.zero_()
        model.model.enc_score_head.bias.fill_(-3.0)
    dec = model.model.decoder
    for mlp in (dec.pre_bbox_head, *dec.bbox_embed, *(q.reg_conf for q in dec.lqe_layers)):
        mlp.act = nn.SiLU()
    for owner, name in ((dec, "query_pos_head"), (model.model, "enc_bbox_head")):
        old = getattr(owner, name)
        new = DFineMLP(old.layers[0].in_features, old.layers[0].out_features, old.layers[-1].out_features,
                       len(old.layers), act="silu")
        new.load_state_dict(old.state_dict())
        setattr(owner, name, new)
    return model


def _fold(sd, conv, norm):
    """A convolution and its batch norm as one convolution with a bias."""
    scale = sd[norm + ".weight"] / (sd[norm + ".running_var"] + 1e-5).sqrt()
    return sd[conv + ".weight"] * scale[:, None, None, None], sd[norm + ".bias"] - sd[norm + ".running_mean"] * scale


def _comfy_layout(model) -> dict:
    """The reference's weights named as ComfyUI's RTv4 names them (its module tree: backbone, encoder, decoder)."""
    import torch.nn.functional as F
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = {}
    for k, v in sd.items():
        if not k.startswith("model.backbone.model."):
            continue
        k = k[len("model.backbone.model."):].replace("embedder.", "stem.").replace("encoder.stages", "stages")
        k = k.replace("convolution.", "conv.").replace("normalization.", "bn.")
        if not k.endswith("num_batches_tracked"):
            out["backbone." + k] = v

    def conv(dst, src, conv_name="conv", norm_name="norm"):
        w, b = _fold(sd, f"{src}.{conv_name}", f"{src}.{norm_name}")
        out[dst + ".conv.weight"], out[dst + ".conv.bias"] = w, b

    def csp(dst, src):
        conv(dst + ".conv1", src + ".conv1")
        conv(dst + ".conv2", src + ".conv2")
        n = 0
        while f"{src}.bottlenecks.{n}.conv1.conv.weight" in sd:
            w3, b3 = _fold(sd, f"{src}.bottlenecks.{n}.conv1.conv", f"{src}.bottlenecks.{n}.conv1.norm")
            w1, b1 = _fold(sd, f"{src}.bottlenecks.{n}.conv2.conv", f"{src}.bottlenecks.{n}.conv2.norm")
            out[f"{dst}.bottlenecks.{n}.conv.weight"] = w3 + F.pad(w1, (1, 1, 1, 1))
            out[f"{dst}.bottlenecks.{n}.conv.bias"] = b3 + b1
            n += 1

    for i in range(3):
        conv(f"encoder.input_proj.{i}", f"model.encoder_input_proj.{i}", "0", "1")
    for k, v in sd.items():
        m = re.match(r"model\.encoder\.aifi\.0\.layers\.(\d+)\.(.*)", k)
        if m:
            rest = m.group(2).replace("o_proj", "out_proj").replace("self_attn_layer_norm", "norm1")
            rest = rest.replace("final_layer_norm", "norm2").replace("mlp.layers.0", "linear1")
            out[f"encoder.encoder.0.layers.{m.group(1)}.{rest.replace('mlp.layers.1', 'linear2')}"] = v
    for j in range(2):
        conv(f"encoder.lateral_convs.{j}", f"model.encoder.lateral_convs.{j}")
        conv(f"encoder.downsample_convs.{j}.0.cv1", f"model.encoder.downsample_convs.{j}.conv1")
        conv(f"encoder.downsample_convs.{j}.0.cv2", f"model.encoder.downsample_convs.{j}.conv2")
        for blocks in ("fpn_blocks", "pan_blocks"):
            dst, src = f"encoder.{blocks}.{j}", f"model.encoder.{blocks}.{j}"
            conv(dst + ".cv1", src + ".conv1")
            csp(dst + ".cv2.0", src + ".csp_rep1")
            conv(dst + ".cv2.1", src + ".conv2")
            csp(dst + ".cv3.0", src + ".csp_rep2")
            conv(dst + ".cv3.1", src + ".conv3")
            conv(dst + ".cv4", src + ".conv4")
    renames = ((r"model\.decoder\.layers\.", "decoder.decoder.layers."), (r"\.o_proj", ".out_proj"),
               (r"self_attn_layer_norm", "norm1"), (r"encoder_attn", "cross_attn"), (r"mlp\.layers\.0", "linear1"),
               (r"mlp\.layers\.1", "linear2"), (r"final_layer_norm", "norm3"),
               (r"model\.decoder\.lqe_layers", "decoder.decoder.lqe_layers"),
               (r"model\.decoder\.(up|reg_scale|query_pos_head|pre_bbox_head)", r"decoder.\1"),
               (r"model\.enc_output\.0", "decoder.enc_output.proj"), (r"model\.enc_output\.1", "decoder.enc_output.norm"),
               (r"model\.(enc_score_head|enc_bbox_head)", r"decoder.\1"),
               (r"model\.decoder\.class_embed", "decoder.dec_score_head"),
               (r"model\.decoder\.bbox_embed", "decoder.dec_bbox_head"))
    for k, v in sd.items():
        if k.startswith(("model.decoder.", "model.enc_")):
            for a, b in renames:
                k = re.sub(a, b, k)
            out[k] = v
    return out


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    import torch
    from safetensors.torch import save_file
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    model = _tiny_dfine()
    path = tmp_path_factory.mktemp("rtdetr") / "rt_detr_v4-x-hgnet_fp32.safetensors"
    save_file({k: v.contiguous() for k, v in _comfy_layout(model).items()}, str(path))
    yield {"model": model, "path": path}
    torch.set_num_threads(threads)


# On random weights the scores bunch (the encoder's best 300 of 8,400 cells span 0.03), so neighbours in rank lie
# a float32 ulp apart (2.4e-7 at 2.76) and the two implementations, or one on another CPU (its vector width, its
# threads), may rank them either way: on one machine query 265 came before 266 in D-FINE and after it here, and a box
# compared row by row was 0.35 off. The queries' decoder is blind to their order (self-attention, positions from their
# boxes), so queries are compared as a set, each to its own counterpart, rank swaps allowed only between scores
# within TIE; which queries (or boxes) are kept at all must not hang on a tie: the scores either side of each cut
# are checked to be MARGIN apart, 40 times what the two sides were seen to differ by (encoder scores 2.4e-7, final
# scores 1.8e-7; the 640x640 picture's encoder cut is 3.0e-5 wide, the frames' cuts 2.4e-5 and over).
TIE, MARGIN = 1e-5, 1e-5


def _separated(scores, k, what):
    """The k-th and (k+1)-th of `scores` (per batch row) lie MARGIN apart, so the best k are the same anywhere."""
    top = scores.flatten(1).topk(k + 1, -1).values
    gap = (top[:, k - 1] - top[:, k]).min()
    assert gap > MARGIN, f"{what} are {float(gap):.2g} apart: a tie, the test would hang on float rounding"


def _matched(got, want, rank):
    """For each of want's rows (ranked by `rank`), the index of got's row that is its counterpart: the nearest one,
    each got row used once, moved only among rows whose ranks tie."""
    import torch
    near = torch.cdist(torch.as_tensor(want, dtype=torch.float64), torch.as_tensor(got, dtype=torch.float64),
                       p=float("inf")).argmin(1)
    assert sorted(near.tolist()) == list(range(len(got))), "two rows have the same nearest counterpart"
    rank = torch.as_tensor(rank, dtype=torch.float64)
    moved = (near != torch.arange(len(near))).nonzero().flatten()
    assert ((rank[moved] - rank[near[moved]]).abs() < TIE).all(), f"rows {moved.tolist()} moved between ranks"
    return near


def test_network_is_dfines(detector):
    """Logits and boxes of every query match transformers' D-FINE on a 640x640 picture."""
    import torch
    from nodes.detect.rtdetr import RTDETR, read_state
    pictures = torch.rand(1, 3, 640, 640, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = detector["model"](pixel_values=pictures)
    logits, boxes = RTDETR(read_state(str(detector["path"])))(pictures)
    encoder = ref.enc_outputs_class.max(-1).values
    _separated(encoder, 300, "the encoder's 300th and 301st query scores")
    near = _matched(torch.cat([boxes, logits], -1)[0], torch.cat([ref.pred_boxes, ref.logits], -1)[0],
                    ref.enc_topk_logits.max(-1).values[0])
    assert torch.allclose(boxes[0, near], ref.pred_boxes[0], atol=1e-4), (boxes[0, near] - ref.pred_boxes[0]).abs().max()
    assert torch.allclose(logits[0, near], ref.logits[0], atol=1e-3), (logits[0, near] - ref.logits[0]).abs().max()


def _comfy_detect(logits, boxes, size, threshold, class_name, limit):
    """ComfyUI's RTv4.postprocess and RTDETR_detect's filter, written out."""
    import torch
    from nodes.detect.rtdetr import COCO_CLASSES
    cx, cy, w, h = boxes.unbind(-1)        # torchvision's box_convert cxcywh -> xyxy
    boxes = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)
    boxes = boxes * torch.tensor(size).repeat(1, 2).unsqueeze(1)
    scores, idx = torch.topk(torch.sigmoid(logits).flatten(1), 300, dim=-1)
    labels, boxes = idx % 80, boxes.gather(1, (idx // 80).unsqueeze(-1).expand(-1, -1, 4))
    keep = scores[0] > threshold
    found = [(*b.tolist(), int(lb), float(s)) for b, lb, s in zip(boxes[0][keep], labels[0][keep], scores[0][keep])
             if class_name == "all" or COCO_CLASSES[int(lb)] == class_name]
    return sorted(found, key=lambda d: -d[5])[:limit]


def _comfy_draw(frame, detections):
    """ComfyUI's DrawBBoxes on one picture's box dicts, written out (PIL's default font, as where Arial is
    missing)."""
    from PIL import Image, ImageDraw, ImageFont
    from nodes.detect.rtdetr import COCO_CLASSES
    img = Image.fromarray(frame)
    boxes = [[d["x"], d["y"], d["x"] + d["width"], d["y"] + d["height"]] for d in detections]
    labels = [d.get("label") if d.get("label") in COCO_CLASSES else None for d in detections]
    scores = [d.get("score", 1.0) for d in detections]
    draw, font = ImageDraw.Draw(img), ImageFont.load_default()
    colors = [(255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 165, 0), (128, 0, 128), (0, 255, 255), (255, 20, 147),
              (100, 149, 237)]
    for (x1, y1, x2, y2), label, score in sorted(zip(boxes, labels, scores), key=lambda x: x[2]):
        c = colors[(COCO_CLASSES.index(label) if label is not None else 0) % len(colors)]
        draw.rectangle([x1, y1, x2, y2], outline=c, width=3)
        if label is not None:
            draw.text((x1 + 2, y1 + 2), f"{label} {score:.2f}", fill=c, font=font)
    return np.asarray(img)


def _same_detections(got, want, ref, threshold, class_name, limit):
    """Kinograph's detections are ComfyUI's on the reference's outputs, each its counterpart (rank swaps only among
    tied scores), and none of the cuts ComfyUI makes (the encoder's 300 queries, the best 300 query-class scores,
    the threshold, the limit) falls between near-equal scores."""
    import torch
    _separated(ref.enc_outputs_class.max(-1).values, 300, "the encoder's 300th and 301st query scores")
    scores = torch.sigmoid(ref.logits)
    _separated(scores, 300, "the 300th and 301st query-class scores")
    kept = scores.flatten().topk(300).values
    assert ((kept - threshold).abs() > MARGIN).all(), f"a score lies within {MARGIN} of the threshold {threshold}"
    every = _comfy_detect(ref.logits, ref.pred_boxes, (96, 64), threshold, class_name, 300)
    if 0 < limit < len(every):
        _separated(torch.tensor([[d[5] for d in every]]), limit, f"the {limit}th and next scores")
    got, want = np.reshape(got, (-1, 6)), np.reshape(want, (-1, 6))
    assert got.shape == want.shape
    if not len(want):
        return
    near = _matched(got, want, want[:, 5]).numpy()
    assert np.array_equal(got[near, 4], want[:, 4])
    assert np.allclose(got[near], want, atol=1e-3), np.abs(got[near] - want).max()


def _frame_and_both(detector, seed):
    """A random 96x64 frame, the reference D-FINE's outputs on it stretched to 640x640 as ComfyUI stretches it, and
    Kinograph's network on the same file."""
    import torch
    import torch.nn.functional as F
    from nodes.detect.rtdetr import RTDETR, read_state
    frame = (np.random.default_rng(seed).uniform(0, 1, (64, 96, 3)) * 255).astype(np.uint8)
    pictures = F.interpolate(torch.from_numpy(frame).float().permute(2, 0, 1)[None] / 255, size=(640, 640),
                             mode="bilinear")
    with torch.no_grad():
        ref = detector["model"](pixel_values=pictures)
    return frame, ref, RTDETR(read_state(str(detector["path"])))


def test_boxes_and_picture_are_comfyuis(detector):
    """A 96x64 frame: the boxes ComfyUI's RTDETR_detect keeps (over 0.05 on random weights, of a class, at most 5) and DrawBBoxes'
    picture of them."""
    from nodes.common.boxes import Box
    from nodes.detect.rtdetr import detect, draw_boxes, label_name
    frame, ref, net = _frame_and_both(detector, 39)     # a frame whose cuts are not ties (_same_detections)
    best = label_name(_comfy_detect(ref.logits, ref.pred_boxes, (96, 64), 0.05, "all", 1)[0][4])
    for class_name, limit in ((best, 300), ("all", 5)):
        want = _comfy_detect(ref.logits, ref.pred_boxes, (96, 64), 0.05, class_name, limit)
        got = detect(net, frame[None], 0.05, class_name, limit)[0]
        _same_detections(got, want, ref, 0.05, class_name, limit)
    assert len({g[0] for g in got}) == 5      # the five best of all classes, different boxes, drawn
    boxes = [Box(x0, y0, x1 - x0, y1 - y0, kind=label_name(label), score=score)
             for x0, y0, x1, y1, label, score in got] + [Box(40.5, 20.0, 30.0, 20.0, kind="text")]
    picture = draw_boxes(frame, boxes)
    comfy = [{"x": b.x, "y": b.y, "width": b.width, "height": b.height, "label": b.kind, "score": b.score}
             for b in boxes]
    assert (picture != frame).any() and np.array_equal(picture, _comfy_draw(frame, comfy))


def test_comfyuis_unbounded_settings_import_as_they_run(detector):
    """RTDETR_detect's threshold and max_detections have no bounds in ComfyUI: a workflow's 1.5 / -0.5 / 500 / 0
    import as values Kinograph takes (scores lie in 0..1; there are 300 queries) and find the boxes ComfyUI's code
    keeps with the workflow's own values."""
    from app.comfyui import import_data
    from graph_engine.api import load_workflow
    from nodes.detect.rtdetr import detect
    frame, ref, net = _frame_and_both(detector, 14)     # a frame whose cuts are not ties (_same_detections)
    for threshold, limit in ((1.5, 5), (-0.5, 500), (0.05, 0)):
        api = {"1": {"class_type": "LoadImage", "inputs": {"image": "people.png"}},
               "2": {"class_type": "UNETLoader", "inputs": {"unet_name": "rt_detr_v4-x-hgnet_fp16.safetensors",
                                                             "weight_dtype": "default"}},
               "3": {"class_type": "RTDETR_detect", "inputs": {"model": ["2", 0], "image": ["1", 0],
                                                               "threshold": threshold, "class_name": "all",
                                                               "max_detections": limit}},
               "4": {"class_type": "DrawBBoxes", "inputs": {"image": ["1", 0], "bboxes": ["3", 0]}},
               "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "boxes"}}}
        graph = load_workflow(text=import_data(api, name="rtdetr").yaml, check=True).graph
        (node,) = [n for n in graph.nodes.values() if n.type == "detect.rtdetr"]
        got = detect(net, frame[None], node.params["threshold"], "all", node.params["max_detections"])[0]
        want = _comfy_detect(ref.logits, ref.pred_boxes, (96, 64), threshold, "all", limit)
        assert len(got) == len(want) == {1.5: 0, -0.5: 300, 0.05: 0}[threshold]
        _same_detections(got, want, ref, threshold, "all", limit)


def test_a_wrong_file_is_named(tmp_path):
    import torch
    from safetensors.torch import save_file
    from graph_engine import NodeError
    from nodes.detect.rtdetr import read_state
    other = tmp_path / "flux.safetensors"
    save_file({"double_blocks.0.img_attn.qkv.weight": torch.zeros(2, 2)}, str(other))
    with pytest.raises(NodeError, match="not ComfyUI's RT-DETR v4 detector.*rt_detr_v4-x-hgnet_fp16"):
        read_state(str(other))
    junk = tmp_path / "rt_detr.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(NodeError, match="cannot be read as a safetensors file"):
        read_state(str(junk))


def test_a_file_short_of_the_network_is_named(detector, tmp_path):
    """A safetensors file with the tensors RT-DETR's file is told by, but not every one the network reads (another
    RT-DETR version's, one cut short), is named with the tensor it lacks, whether that is read when it loads or
    while it detects."""
    from safetensors.torch import load_file, save_file
    from graph_engine import NodeError
    from nodes.detect.rtdetr import detect, load
    sd = load_file(str(detector["path"]))
    for n, gone in enumerate(("decoder.reg_scale", "encoder.fpn_blocks.0.cv4.conv.weight")):
        path = tmp_path / f"rt_detr_short_{n}.safetensors"
        save_file({k: v for k, v in sd.items() if k != gone}, str(path))
        with pytest.raises(NodeError, match=f"{path.name} is not ComfyUI's RT-DETR v4 detector "
                                            f"\\(it has no {re.escape(gone)}\\).*rt_detr_v4-x-hgnet_fp16"):
            detect(load(str(path)), np.zeros((1, 32, 48, 3), np.uint8), 0.5, "all", 10)


def test_multi_person_template_imports():
    """utility_sdpose_multi_person: RT-DETR's UNETLoader folds into detect.rtdetr's model (no diffusion-model
    loader left), whose person boxes feed both SDPose and the box picture, with the template's settings."""
    from pathlib import Path
    from app.comfyui import import_workflow
    from graph_engine.api import load_workflow
    res = import_workflow(str(Path(__file__).parent / "data" / "comfyui" / "templates" /
                              "utility_sdpose_multi_person.json"))
    graph = load_workflow(text=res.yaml, check=False).graph
    types = [n.type for n in graph.nodes.values()]
    assert "load.diffusion_model" not in types
    (det,) = [n for n in graph.nodes.values() if n.type == "detect.rtdetr"]
    assert det.params["model"] == "rt_detr_v4-x-hgnet_fp16.safetensors"
    assert (det.params["threshold"], det.params["class_name"], det.params["max_detections"]) == (0.5, "person", 1)
    fed = {graph.nodes[k.dst].type: k.dst_port for k in graph.links_from(det.id)}
    assert fed == {"pose.sdpose_keypoints": "boxes", "detect.draw_boxes": "boxes"}


def _lying(path, **tensors):
    """The few tensors RTDETR reads its sizes from, then `tensors`, as one file's state."""
    import torch
    from nodes.detect.rtdetr import Tensors
    return Tensors(str(path), {"decoder.dec_score_head.0.weight": torch.zeros(80, 4),
                               "decoder.dec_bbox_head.0.layers.2.weight": torch.zeros(132, 4),
                               "decoder.up": torch.tensor([0.5]), "decoder.reg_scale": torch.tensor([4.0]), **tensors})


@pytest.mark.timeout(20)
def test_a_file_lying_about_its_sampling_points_is_named(tmp_path):
    """The decoder's num_points_scale (1/n, n times a level) gives how many points each level samples: a scale of
    1e-12 made 10^12 points, one of 1 then -1 went back and forth for ever, growing its list (both hung), 0 and NaN
    were ZeroDivisionError / ValueError tracebacks, as was a bin head too small for D-FINE's bins."""
    import torch
    from graph_engine import NodeError
    from nodes.detect.rtdetr import RTDETR
    scale = "decoder.decoder.layers.0.cross_attn.num_points_scale"
    for values in ([1e-12], [1.0, -1.0], [0.0], [float("nan")], [0.5]):
        with pytest.raises(NodeError, match=r"det\.safetensors: its decoder's num_points_scale .* is not"):
            RTDETR(_lying(tmp_path / "det.safetensors", **{scale: torch.tensor(values)}))
    with pytest.raises(NodeError, match=r"det\.safetensors holds tensors of shapes an RT-DETR v4 detector"):
        RTDETR(_lying(tmp_path / "det.safetensors", **{"decoder.dec_bbox_head.0.layers.2.weight": torch.zeros(12, 4)}))


@pytest.mark.timeout(20)
def test_a_file_naming_thousands_of_stages_is_named_at_once(tmp_path):
    """Each numbered part was counted by scanning every tensor name once per number: 20,000 empty tensors naming
    backbone stages (a 1 MB header) took ~35 s before anything was said, 50,000 minutes."""
    import time
    import torch
    from graph_engine import NodeError
    from nodes.detect.rtdetr import RTDETR
    stages = {f"backbone.stages.{i}.downsample.conv.weight": torch.zeros(0) for i in range(20000)}
    t = time.perf_counter()
    with pytest.raises(NodeError, match=r"det\.safetensors.* 20,000 .*backbone\.stages"):
        RTDETR(_lying(tmp_path / "det.safetensors", **stages))
    assert time.perf_counter() - t < 5


@pytest.mark.timeout(30)
def test_a_box_far_outside_the_frame_is_drawn_at_once():
    """A box from -1e9 to 1e9 pixels (boxes.create takes any finite number, as ComfyUI's editor state does) took
    Pillow 18 s to outline on a 96x64 frame, each frame of a clip; a label at 1e300 was a SystemError traceback.
    Drawn now as it shows, the same pixels as Pillow's own drawing of a box a little outside the frame."""
    import time
    from nodes.common.boxes import Box
    from nodes.detect.rtdetr import draw_boxes
    frame = np.zeros((64, 96, 3), np.uint8)
    near = [Box(-50.5, 10.0, 400.0, 30.0, kind="person", score=0.9), Box(20.0, -70.0, 30.0, 100.0, kind="dog")]
    assert np.array_equal(draw_boxes(frame, near), _comfy_draw(frame, [
        {"x": b.x, "y": b.y, "width": b.width, "height": b.height, "label": b.kind, "score": b.score} for b in near]))
    t = time.perf_counter()
    far = draw_boxes(frame, [Box(-1e9, -1e9, 2e9, 2e9, kind="person"), Box(1e300, 5.0, 1e300, 5.0, kind="car")])
    assert time.perf_counter() - t < 2 and not far.any()


@pytest.mark.timeout(20)
@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="named pipes are POSIX's")
def test_a_named_pipe_in_place_of_the_detector_is_named(tmp_path):
    """A named pipe called rt_detr_v4-x-hgnet_fp16.safetensors in the model folder (a received archive can hold
    one): safetensors opened it and waited for a writer for ever."""
    import os
    from graph_engine import NodeError
    from nodes.detect.rtdetr import read_state
    pipe = tmp_path / "rt_detr_v4-x-hgnet_fp16.safetensors"
    os.mkfifo(pipe)
    with pytest.raises(NodeError, match="named pipe"):
        read_state(str(pipe))


def test_a_half_precision_files_sampling_points_still_read(tmp_path):
    """A detector saved in bf16 or fp16 holds 1/3 and 1/6 rounded (bf16: 0.33398 and 0.16699, 0.2 % off): ComfyUI
    takes its points from its config and runs such a file, and Kinograph's read_state makes it float32 anyway; the
    check against a lying file refused bf16 (its tolerance, 0.1 %, was tighter than bf16's rounding)."""
    import torch
    from nodes.detect.rtdetr import RTDETR
    scale = "decoder.decoder.layers.0.cross_attn.num_points_scale"
    comfy = torch.tensor([1 / 3] * 3 + [1 / 6] * 6 + [1 / 3] * 3)
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        rounded = comfy.to(dtype).float()      # as read_state gives it
        assert RTDETR(_lying(tmp_path / "det.safetensors", **{scale: rounded})).points == [3, 6, 3], dtype
