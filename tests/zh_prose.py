"""How much of a Chinese page is in Chinese: the share of Latin-script words in what a reader reads.

:func:`prose_text` keeps a built page's prose (no code, maths, scripts or citations);
:func:`latin_share` counts Latin words against Chinese characters, names without a Chinese form
counting as neither. The tests keep every Chinese page below :data:`LATIN_SHARE_LIMIT`.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

#: the most Latin-script words a Chinese page may have, as a share of its tokens
LATIN_SHARE_LIMIT = 0.04
#: names and symbols written in Latin script in Chinese technical prose too (lower case): software, formats,
#: models; data sets, hardware, units; the pieces a page's words split number formats into (fp16 -> "fp")
NAMES = set(
    """
    keras tensorflow jax pytorch torch numpy python pandas matplotlib jupyter jupyterlab colab binder papermill
    nbval sphinx myst github pypi npm mathjax http https api json rest fastapi uvicorn ray serve kuberay kserve
    triton vllm openai tf sgd adam adamw nesterov relu gelu softmax logits logit dense conv2d sequential b64 base64
    savedmodel xla nccl cuda onnx csv pdf url id ids ascii utf sse kv ttft tpot itl e2e p50 p95 p99 lr fedavg iid
    grad cam tta bf16 fp16 fp32 fp8 int8 int4 moe gpt bert llama chinchilla palm lenet alexnet resnet vgg airbench
    imagenet transformer
    cifar mnist gpu gpus cpu cpus tpu tpus nvidia h100 h200 a100 v100 intel amd flop flops tflop pflop mb mib gb gib
    tb tib kb ms s min h w
    fp bf int wh kwh hz ghz pue mfu ci en zh x y n d k e c l a b p t m f g
    """.split()
)
_LATIN = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
#: subtrees a reader does not read as prose
_SKIP_TAGS = {"script", "style", "code", "svg", "math", "mjx-container", "kbd", "nav", "button"}
_SKIP_CLASSES = {"cell_input", "math", "headerlink", "MathJax", "toggle-details__summary"}


class _Prose(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, skipping, inside a cell's output)
        self.parts: list[str] = []
        self.inside_article = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        skipping, in_output = self.stack[-1][1:] if self.stack else (False, False)
        in_output = in_output or "cell_output" in classes
        skip = (
            skipping
            or tag in _SKIP_TAGS
            or bool(classes & _SKIP_CLASSES)
            or (("highlight" in classes or tag == "pre") and not in_output)  # code blocks in prose
            or (tag == "a" and (a.get("href") or "").startswith("references.html"))
        )  # citations
        if tag == "article" and "bd-article" in classes:
            self.inside_article = True
        if tag not in ("br", "img", "hr", "meta", "link", "input", "col", "wbr"):
            self.stack.append((tag, skip, in_output))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break
        if tag == "article":
            self.inside_article = False

    def handle_data(self, data):
        if self.inside_article and not (self.stack and self.stack[-1][1]):
            self.parts.append(data)


def prose_text(html: str) -> str:
    """The text a reader reads on a built page (see the module's docstring)."""
    parser = _Prose()
    parser.feed(html)
    text = " ".join(parser.parts)
    return re.sub(r"\\\(.*?\\\)|\\\[.*?\\\]|\$\$.*?\$\$|\$[^$\n]+\$", " ", text, flags=re.S)  # TeX for MathJax


def latin_words(text: str) -> list[str]:
    """The Latin-script words of ``text`` that are not names (see :data:`NAMES`)."""
    return [w for w in _LATIN.findall(text) if w.lower().strip("'’-") not in NAMES]


def latin_share(text: str) -> float:
    """Latin-script words (names excepted) over those words plus Chinese characters."""
    latin = len(latin_words(text))
    chinese = len(_CJK.findall(text))
    return latin / (latin + chinese) if latin + chinese else 0.0
