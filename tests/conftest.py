"""Test-session isolation: offline hubs, a private cache and config folder, offscreen Qt."""
import os
import tempfile

_root = tempfile.mkdtemp(prefix="kinograph-tests-")
os.environ.setdefault("KINOGRAPH_CACHE_DIR", os.path.join(_root, "cache"))
os.environ.setdefault("KINOGRAPH_CONFIG_DIR", os.path.join(_root, "config"))
os.environ.setdefault("KINOGRAPH_DATA_DIR", os.path.join(_root, "data"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
