"""FizzNodes' prompt schedule."""
from __future__ import annotations

import re



class FizzNodes:
    def special_prompt_schedule(self, cn, rule, params, notes):
        """FizzNodes' keyframes ("FRAME": "prompt", ... as JSON object members), each with pre_text before it and
        app_text after it, as Kinograph's `FRAME: (prompt)` schedule; its NEG output is the empty prompt."""
        text = str(self.resolve(cn.inputs.get("text")) or "")
        pre, app = (str(self.resolve(cn.inputs.get(k)) or "").strip().rstrip(",").strip()
                    for k in ("pre_text", "app_text"))
        keys = re.findall(r'"\s*(\d+)\s*"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
        if not keys:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append('its text has no "FRAME": "prompt" keyframes to read')
            return None
        keys = sorted({int(f): p for f, p in keys}.items())         # FizzNodes keeps the last of a repeated frame
        parts = [", ".join(x for x in (pre, p.replace('\\"', '"').strip().rstrip(",").strip(), app) if x)
                 for _, p in keys]
        params["text"] = ", ".join(f"{f}: ({part})" for (f, _), part in zip(keys, parts))
        if "--neg" in text or re.search(r"\bpw_[abcd]\b", text):
            notes.append("its --neg parts and pw_a..pw_d weights are not carried")
        return [self.plain(cn, rule, params, notes)]
