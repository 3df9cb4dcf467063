"""The HTML verify report: rendered from the JSON document, self-contained, escaped, marks the faulty layer."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import nnconvert
from nnconvert.cli import main
from nnconvert.ir import Activation, DenseLayer, Head, InputSpec, Metadata, Model, Task

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SCHEMA = Path(nnconvert.__file__).parent / "schemas" / "verify_report.schema.json"
STATIC_TOKENS = {"sha256", "p99"}  # the page's own words with digits; everything else with a digit comes from the document


def iris_rows() -> np.ndarray:
    return np.loadtxt(SAMPLES / "iris_test.csv", delimiter=",", skiprows=1)


def broken_iris_onnx(tmp_path: Path, layer: int, name: str = "broken.onnx") -> Path:
    """The iris sample's ONNX model with one weight of ``layer`` changed."""
    model = nnconvert.load(SAMPLES / "iris_mlp.onnx")
    weights = np.array(model.layers[layer].weights)
    weights[2, 1] += 0.5
    layers = list(model.layers)
    layers[layer] = replace(layers[layer], weights=weights)
    path = tmp_path / name
    nnconvert.save(replace(model, layers=tuple(layers)), path)
    return path


def iris_report(candidate: Path | str = SAMPLES / "iris_mlp.onnx"):
    return nnconvert.verify(SAMPLES / "iris_mlp.pkl", candidate, iris_rows(), trust=True)


class _Figures(HTMLParser):
    """Collect (data-value, shown text) of every marked figure, and the text outside them."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[tuple[str, str]] = []
        self.loose_text: list[str] = []
        self._stack: list[tuple[str, str | None]] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("style", "title"):
            self._skip += 1
        self._stack.append((tag, attributes.get("data-value")))
        if attributes.get("data-value") is not None:
            self.figures.append((attributes["data-value"], ""))

    def handle_endtag(self, tag):
        while self._stack:
            open_tag, _ = self._stack.pop()
            if open_tag == tag:
                break
        if tag in ("style", "title"):
            self._skip -= 1

    def handle_data(self, data):
        if self._skip:
            return
        if any(value is not None for _, value in self._stack):
            value, text = self.figures[-1]
            self.figures[-1] = (value, text + data)
        else:
            self.loose_text.append(data)


def _numbers_and_strings(value, numbers: set, strings: list) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            strings.append(str(key))
            _numbers_and_strings(item, numbers, strings)
    elif isinstance(value, list):
        for item in value:
            _numbers_and_strings(item, numbers, strings)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, (int, float)):
        numbers.add(float(value))
    else:
        strings.append(str(value))


def _shown_number(text: str) -> float:
    text = text.replace(",", "").replace("−", "-").replace("∞", "inf").strip()
    if text.endswith("%"):
        return float(text[:-1]) / 100
    return float(text)


def assert_every_figure_in_json(page: str, document: dict) -> int:
    """Each marked figure's value is a number of the document and its text shows it; no unmarked figures."""
    numbers: set[float] = set()
    strings: list[str] = []
    _numbers_and_strings(json.loads(json.dumps(document)), numbers, strings)
    parser = _Figures()
    parser.feed(page)
    assert parser.figures, "no figure is marked on the page"
    for value, text in parser.figures:
        assert float(value) in numbers, f"{value} (shown as {text!r}) is not in the JSON report"
        shown, exact = _shown_number(text), float(value)
        assert shown == pytest.approx(exact, rel=6e-3, abs=1e-300), f"{text!r} does not show {value}"
    corpus = "\n".join(strings)
    for chunk in parser.loose_text:
        for token in re.findall(r"[^\s,;:()\[\]]*\d[^\s,;:()\[\]]*", chunk):
            token = token.rstrip(".…")
            whole = re.search(rf"(?<![0-9A-Za-z.]){re.escape(token)}(?![0-9A-Za-z])", corpus)  # not a digit run inside a hash
            assert token in STATIC_TOKENS or whole, f"{token!r} on the page is neither a marked figure nor text of the report"
    return len(parser.figures)


# -- the page is the JSON document, drawn ------------------------------------------------


def test_passing_iris_page_shows_verdict_diagram_histogram_flips_and_is_small(tmp_path):
    report = iris_report()
    path = tmp_path / "report.html"
    page = report.to_html(path)
    assert path.read_text(encoding="utf-8") == page
    assert len(page.encode()) < 200_000
    assert page.index("nnconvert verify: PASSED") < page.index('class="diagram"') < page.index('class="hist"')
    assert "Label flips" in page and "Near-tie" in page and "Wide margin" in page
    for needle in ("iris_mlp.pkl", report.to_dict()["reference"]["file"]["sha256"], report.to_dict()["candidate"]["file"]["sha256"]):
        assert needle in page
    # nothing loads from elsewhere: no scripts, links, external URLs or CSS imports
    lowered = page.lower()
    for forbidden in ("<script", "<link", "src=", "@import", "url("):
        assert forbidden not in lowered
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"] * page.count("<svg")
    assert assert_every_figure_in_json(page, report.to_dict()) > 50


@pytest.mark.parametrize("layer", [0, 1])
def test_broken_candidate_page_marks_the_faulty_layer(tmp_path, layer):
    report = iris_report(broken_iris_onnx(tmp_path, layer))
    assert not report.passed
    page = report.to_html()
    marked = re.findall(r'<g class="stage fail" data-layer="(-?\d+)"', page)
    assert marked == [str(layer)]
    assert report.first_failing_layer["index"] == layer
    verdict = page[page.index('id="verdict"') : page.index("</section>")]
    assert "FAILED" in verdict and "Why:" in verdict and f"layer <span data-value=\"{layer}\">{layer}</span>" in verdict
    assert_every_figure_in_json(page, report.to_dict())


def test_detailed_document_follows_the_schema_and_keeps_version_1(tmp_path):
    import jsonschema

    document = iris_report(broken_iris_onnx(tmp_path, 1)).to_dict()
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(document)
    assert document["version"] == 1 and document["format_version"] == "1.2"
    candidate = document["candidate"]
    assert candidate["file"]["size"] == (tmp_path / "broken.onnx").stat().st_size
    assert [layer["shape"] for layer in candidate["model"]["layers"]] == [[4, 10], [10, 3]]
    check = document["outputs"][0]["checks"][0]
    histogram = check["histogram"]
    reference = nnconvert.verify(SAMPLES / "iris_mlp.pkl", tmp_path / "broken.onnx", iris_rows(), trust=True)
    ref, cand = (np.asarray(reference.input_sets[0][side]["probabilities"], dtype=np.float64) for side in ("reference", "candidate"))
    errors = np.abs(cand - ref).ravel()
    assert sum(histogram["counts"]) + histogram["exact"] + histogram["nonfinite"] == errors.size
    # numpy's own histogram over the same edges agrees with the counts
    assert np.histogram(errors[errors > 0], bins=histogram["edges"])[0].tolist() == histogram["counts"]
    worst = check["worst_samples"][0]
    assert worst["x"] == iris_rows()[worst["row"]].tolist()


# -- hostile strings -----------------------------------------------------------------------


HOSTILE = "<script>alert('x')</script>"


def _hostile_model(shift: float = 0.0) -> Model:
    rng = np.random.default_rng(3)
    first, second = rng.normal(size=(3, 5)), rng.normal(size=(5, 2))
    second[:, 0] += shift
    return Model(
        layers=(
            DenseLayer(first, np.zeros(5), Activation.RELU, name=HOSTILE),
            DenseLayer(second, np.zeros(2), Activation.SOFTMAX, name='"><img src=x onerror=alert(1)>'),
        ),
        head=Head(Task.BINARY, classes=np.array([HOSTILE, "</td></tr></table><h1>pwned"])),
        input=InputSpec(n_features=3, name="<b>X</b>"),
        metadata=Metadata(producer="<iframe src=//evil>"),
    )


def test_labels_names_and_producers_from_files_are_escaped():
    report = nnconvert.verify(_hostile_model(), _hostile_model(shift=1.5), n_samples=200, value_range=(-2, 2))
    assert report.output("labels")["checks"][0]["flipped"] > 0  # the hostile labels appear in the flips table
    page = report.to_html()
    lowered = page.lower()
    for raw in ("<script", "<img", "<iframe", "<h1>pwned", "<b>x</b>"):
        assert raw not in lowered
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;h1&gt;pwned" in page
    assert "&lt;iframe src=//evil&gt;" in page
    assert_every_figure_in_json(page, report.to_dict())


# -- the command line ------------------------------------------------------------------------


def test_verify_and_convert_write_the_page(tmp_path, capsys):
    page = tmp_path / "verify.html"
    code = main(["verify", str(SAMPLES / "iris_mlp.pkl"), str(SAMPLES / "iris_mlp.onnx"), "--trust-pickle",
                 "--data", str(SAMPLES / "iris_test.csv"), "--report-html", str(page), "--report-json", str(tmp_path / "r.json")])  # fmt: skip
    assert code == 0
    text = page.read_text(encoding="utf-8")
    assert "nnconvert verify: PASSED" in text
    assert_every_figure_in_json(text, json.loads((tmp_path / "r.json").read_text()))
    converted = tmp_path / "iris.onnx"
    code = main(["convert", str(SAMPLES / "iris_mlp.pkl"), str(converted), "--trust-pickle", "--verify",
                 "--data", str(SAMPLES / "iris_test.csv"), "--report-html", str(tmp_path / "convert.html")])  # fmt: skip
    assert code == 0
    text = (tmp_path / "convert.html").read_text(encoding="utf-8")
    assert "nnconvert verify: PASSED" in text and str(converted) in text and "iris_mlp.pkl" in text


def test_broken_candidate_on_the_command_line_exits_1_with_the_page(tmp_path):
    page = tmp_path / "fail.html"
    code = main(["verify", str(SAMPLES / "iris_mlp.pkl"), str(broken_iris_onnx(tmp_path, 1)), "--trust-pickle",
                 "--data", str(SAMPLES / "iris_test.csv"), "--report-html", str(page)])  # fmt: skip
    assert code == 1
    assert '<g class="stage fail" data-layer="1"' in page.read_text(encoding="utf-8")


def test_unwritable_page_is_exit_3_and_leaves_nothing(tmp_path, capsys):
    missing = tmp_path / "no-such-folder" / "r.html"
    code = main(["verify", str(SAMPLES / "iris_mlp.pkl"), str(SAMPLES / "iris_mlp.onnx"), "--trust-pickle",
                 "--data", str(SAMPLES / "iris_test.csv"), "--report-html", str(missing)])  # fmt: skip
    assert code == 3
    assert "r.html" in capsys.readouterr().err
    assert not missing.parent.exists()


def test_inspect_html_draws_the_diagram_alone(tmp_path, capsys):
    page = tmp_path / "model.html"
    assert main(["inspect", str(SAMPLES / "iris_mlp.onnx"), "--html", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    described = nnconvert.load(SAMPLES / "iris_mlp.onnx")
    assert text.count('class="stage"') == 2 + len(described.layers) + len(described.steps)  # input, steps, layers, head
    for layer in described.layers:
        assert f"dense {layer.n_inputs} → {layer.n_outputs}".replace(" ", "") in re.sub(r"<[^>]+>|\s", "", text)
    assert "<script" not in text.lower() and 'class="stage fail"' not in text
