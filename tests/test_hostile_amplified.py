"""Small files from strangers that ask for huge work or numbers nothing can hold: ComfyUI loops unrolled on import, a
ConvRot layer claiming a rotation group the size of a model, a prompt longer than the language model reads, a canvas
layout at NaN or a 400-digit coordinate. Each runs in a child process with a memory limit and a time limit, and must
end in one message naming the thing and what to do, never a traceback."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Address space for the child: far above what a tiny model or a 5,000-node import takes, far below the attacks.
LIMIT = 2048 << 20
PRELUDE = "import resource, sys\nresource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"


def child(code: str, *args, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRELUDE.format(limit=LIMIT) + code, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _loops(count: int, body: int) -> dict:
    """A ComfyUI API prompt of `count` separate loops of 64 passes, each inverting a picture `body` times in a chain
    and saving what it carried out: 64 x 62 = 3,968 copies a loop, under the per-loop cap."""
    api = {"img": {"class_type": "LoadImage", "inputs": {"image": "a.png"}}}
    for k in range(count):
        api[f"s{k}"] = {"class_type": "StartLoop", "inputs": {"mode": "simple", "mode.num_iterations": 64,
                                                              "initial_iteration_value": ["img", 0]}}
        prev = [f"s{k}", 4]
        for b in range(body):
            api[f"b{k}_{b}"] = {"class_type": "ImageInvert", "inputs": {"image": prev}}
            prev = [f"b{k}_{b}", 0]
        api[f"e{k}"] = {"class_type": "EndLoop", "inputs": {"output_value": prev, "next_iteration_value": prev}}
        api[f"v{k}"] = {"class_type": "SaveImage", "inputs": {"images": [f"e{k}", 0], "filename_prefix": f"x{k}"}}
    return api


def test_loops_of_a_file_are_unrolled_within_one_budget_not_one_each(tmp_path):
    """75 loops of 62 nodes (4,876 nodes, under the 5,000-node limit) each stayed under the 4,000 copies a loop may
    make: the import made 297,676 nodes in 53 s and 730 MB. The copies are now counted over the file: the first loop
    is unrolled, the next ones say why not."""
    f = tmp_path / "loops.json"
    f.write_text(json.dumps(_loops(75, 62)))
    code = ("from app.comfyui import import_workflow\nres = import_workflow(sys.argv[1])\n"
            "print(len(res.graph.nodes))\n"
            "print(' '.join(n for e in res.report.entries.values() if e.comfy_id == 's1' for n in e.notes))\n")
    r = child(code, f)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    count, notes = r.stdout.splitlines()
    assert int(count) < 10_000
    assert ("the loop is not unrolled: 64 passes of its 62 nodes would make 3968; Kinograph unrolls up to 4000 nodes "
            "in one file, and the loops before it made 3968") in notes


def _convrot_file(path: Path, group: int) -> Path:
    """One int8_convrot layer of a single row of `group` inputs (64 KB for 65,536) tagged with that rotation group:
    rotating it back builds a group x group Hadamard matrix."""
    import torch
    from safetensors.torch import save_file
    cfg = {"format": "int8_tensorwise", "convrot": True, "convrot_groupsize": group}
    save_file({"blk.proj.weight": torch.ones(1, group, dtype=torch.int8),
               "blk.proj.weight_scale": torch.ones(1, 1),
               "blk.proj.comfy_quant": torch.tensor(list(json.dumps(cfg).encode()), dtype=torch.uint8)}, str(path))
    return path


def test_a_convrot_rotation_group_the_size_of_a_model_is_refused_before_it_is_built(tmp_path):
    """A 64 KB file whose one layer's tag asks for a rotation group of 65,536 inputs (4 ** 8, a power of 4 as the tag
    must give): the loader built the 65,536 x 65,536 Hadamard matrix, 16 GB, and failed with torch's allocator
    error and a traceback. ComfyUI's files rotate groups of 256."""
    f = _convrot_file(tmp_path / "model_int8_convrot.safetensors", 4 ** 8)
    code = ("from graph_engine import NodeError\nfrom nodes.generate.weights import load_weights\n"
            "from nodes.generate.weights import unreadable_format\nfrom safetensors import safe_open\n"
            "try:\n    load_weights(sys.argv[1])\nexcept NodeError as e:\n    print(e)\n"
            "with safe_open(sys.argv[1], 'pt') as f:\n    print(unreadable_format(sys.argv[1], list(f.keys())))\n")
    r = child(code, f)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    why = ("blk.proj's comfy_quant tag gives a rotation group of 65536 inputs; ComfyUI's ConvRot rotates groups of "
           "at most 4096 (256 in its files): the file is damaged; copy it again")
    assert r.stdout.splitlines() == [f"model_int8_convrot.safetensors: {why}", why]


def test_a_prompt_the_language_model_cannot_read_is_refused_by_name(tmp_path):
    """text.generate on a tiny Qwen3 with Qwen3-4B's context of 40,960 tokens: a prompt of 41,000 tokens was generated
    from as if it fitted (a real encoder's cache grows with the prompt, past the positions it was trained on), an empty
    prompt sent as written (use_default_template off) failed in transformers with 'cannot reshape tensor of 0
    elements' and a traceback. Both are refused naming the node and what to do; max_length stops at the context (here
    made 1,030, where 32,768 tokens take minutes on a CPU)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_textgen import build
    build(tmp_path)
    code = ("import os\nfrom graph_engine import NodeError\nfrom nodes.generate.model_manager import ModelManager\n"
            "from nodes.generate.split import load_text_encoder\nfrom nodes.generate.textgen import generate_ids\n"
            "h = load_text_encoder(ModelManager(), 'qwen3_tied_tiny.safetensors', '', 'auto', 'cpu')\n"
            "for prompt, kw in (('word ' * 8200, {}), ('', {'use_template': False})):\n"
            "    try:\n        generate_ids(h, prompt, max_length=4, **kw)\n"
            "    except NodeError as e:\n        print(e)\n"
            "h.pipe.text_encoder.config.max_position_embeddings = 1030\n"
            "print(len(generate_ids(h, 'word ' * 200, max_length=32768, sample=False)[0]))\n")
    r = subprocess.run([sys.executable, "-c", PRELUDE.format(limit=LIMIT) + code], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT),
                                         "KINOGRAPH_MODELS": str(tmp_path / "models")})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stdout.splitlines() == [
        "text.generate: the prompt in the model's chat turn is 41,025 tokens, and Qwen3 reads at most 40,960: shorten "
        "the prompt",
        "text.generate's prompt is empty and use_default_template is off, so the model has no token to start from: "
        "write a prompt, or turn use_default_template on",
        "5"]       # the context of 1,030 less the 1,025 tokens of the prompt in its chat turn


# Opens a workflow in the editor's window off screen and prints what the canvas kept and what it said it left out.
EDITOR = """
import os
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from pathlib import Path
from PySide6.QtWidgets import QApplication
app = QApplication([])
from app.editor.document import Document
from app.editor.window import MainWindow
from graph_engine.registry import default_registry
w = MainWindow(Document.load(Path(sys.argv[1]), default_registry()))
w.show()
app.processEvents()
print(sorted(w.doc.graph.ui.get("_notes", {})), w.doc.graph.ui["p"].get("pos") == [0, 0] or w.doc.graph.ui["p"])
print(sorted(p.message.split(";")[0] for p in w.doc.problems if p.dropped))
sys.stdout.flush()
os._exit(0)
"""


def test_layout_numbers_no_canvas_can_draw_are_left_out_with_a_word(tmp_path):
    """A stranger's workflow placing its node at (.nan, .inf) froze the editor as it opened the file (killed after
    40 s), a note at x = a whole number of 400 digits stopped it with an OverflowError traceback from Qt, and a
    ComfyUI file whose saved view (extra.ds) was such a number raised the same out of File > Open. Each is left out as
    a layout the canvas cannot draw, said so (Save asks before writing the file without it)."""
    big = "1" + "0" * 400
    wf = tmp_path / "far.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  p: {type: generate.test_pattern, params: {frames: 1, width: 16, "
                  "height: 16}}\nui:\n  p: {pos: [.nan, .inf]}\n  _notes:\n    n1: {pos: [" + big + ", 0], text: far}\n"
                  "    n2: {pos: [40, 40], text: near}\n")
    r = child(EDITOR, wf)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    kept, said = r.stdout.splitlines()
    assert kept == "['n2'] True"
    assert said == str(["layout of n1: pos [" + big + ", 0] is not [x, y]", "layout of p: pos [nan, inf] is not [x, y]"])
    comfy = tmp_path / "view.json"
    comfy.write_text(json.dumps({"last_node_id": 1, "last_link_id": 0, "links": [], "version": 0.4, "nodes": [
        {"id": 1, "type": "EmptyImage", "pos": [0, 0], "size": [200, 100], "mode": 0, "widgets_values": [64, 64, 1, 0],
         "outputs": [], "inputs": []}]})[:-1] + ', "extra": {"ds": {"scale": 1, "offset": [' + big + ', 0]}}}')
    code = "from app.editor.comfyui_open import saved_view\nprint(saved_view(sys.argv[1]))\n"
    r = child(code, comfy)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stdout.strip() == "None"


def test_a_model_file_of_empty_tensors_claiming_a_huge_network_is_refused_before_it_is_built(tmp_path):
    """Converters read a network's widths from tensor shapes, and a tensor of shape (4,000,000, 0) holds no byte: a
    Kandinsky 5 file of such tensors (a few hundred bytes) was built as a model of 496 trillion values, torch's
    allocator asked for 64 TB (init_empty_weights makes each parameter before moving it to the meta device) and the
    load ended in a RuntimeError traceback; at widths of tens of thousands the same build takes gigabytes. The
    network is now measured on the meta device first and compared with the values the file holds."""
    import torch
    from safetensors.torch import save_file
    width = 4_000_000
    f = tmp_path / "kandinsky5lite_t2v_sft_5s.safetensors"
    save_file({"out_layer.out_layer.weight": torch.zeros(64, 0), "visual_embeddings.in_layer.weight": torch.zeros(0, 64),
               "visual_transformer_blocks.0.self_attention.query_norm.weight": torch.zeros(128),
               "text_embeddings.in_layer.weight": torch.zeros(width, 0),
               "pooled_text_embeddings.in_layer.weight": torch.zeros(0, 8),
               "time_embeddings.out_layer.weight": torch.zeros(width, 0),
               "visual_transformer_blocks.0.feed_forward.in_layer.weight": torch.zeros(0, 0),
               "text_transformer_blocks.0.norm.weight": torch.zeros(0)}, str(f))
    code = ("from graph_engine import NodeError\nfrom nodes.generate import converters\n"
            "from nodes.generate.detect import Detection\nfrom nodes.generate.weights import load_weights\n"
            "try:\n    converters.build(Detection('diffusion_model', 'kandinsky5'), load_weights(sys.argv[1]), None, "
            "'kandinsky5lite_t2v_sft_5s.safetensors')\nexcept NodeError as e:\n    print(e)\n")
    r = child(code, f, timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stdout.strip() == ("kandinsky5lite_t2v_sft_5s.safetensors: its tensor shapes make a network of "
                                "496,000,696,074,560 values, far more than the file's 128: the file is damaged or made "
                                "to fill memory. Get it again from where it was published")
