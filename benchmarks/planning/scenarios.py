"""The five multi-model scenarios and two apps of the gpu-let reference (shared/reference/gpulet.md)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from modelplex.core.profile import Profile
from modelplex.planning.synthetic import MODELS


@dataclass(frozen=True)
class Scenario:
    """A model mix with fixed rate ratios and SLOs."""

    name: str  # short name
    models: tuple[tuple[str, str], ...]  # (model name in the plan, profile it uses)
    app: bool = False  # an app: every app request hits every model once (rate = app requests/s)

    def weights(self) -> list[float]:
        """Per-model rate per unit of the reported total rate."""
        return [1.0] * len(self.models) if self.app else [1.0 / len(self.models)] * len(self.models)

    def slo_ms(self, name: str) -> float:
        base = dict(self.models)[name]
        return MODELS[base].slo_ms


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("S1 goog+bert+mnas+mob", (("googlenet", "googlenet"), ("bert", "bert"), ("mnasnet", "mnasnet"), ("mobilenetv2", "mobilenetv2"))),
    Scenario("S2 dense+vgg", (("densenet161", "densenet161"), ("vgg16", "vgg16"))),
    Scenario("S3 res+vgg+mob", (("resnet50", "resnet50"), ("vgg16", "vgg16"), ("mobilenetv2", "mobilenetv2"))),
    Scenario("S4 ssd+mnas+dense", (("ssd-mobilenet", "ssd-mobilenet"), ("mnasnet", "mnasnet"), ("densenet161", "densenet161"))),
    Scenario("S5 lenet+ssd+vgg+mnas", (("lenet", "lenet"), ("ssd-mobilenet", "ssd-mobilenet"), ("vgg16", "vgg16"), ("mnasnet", "mnasnet"))),
    Scenario("game (6 lenet+res)", tuple((f"lenet{i}", "lenet") for i in range(1, 7)) + (("resnet50", "resnet50"),), app=True),
    Scenario("traffic (ssd,goog,vgg)", (("ssd-mobilenet", "ssd-mobilenet"), ("googlenet", "googlenet"), ("vgg16", "vgg16")), app=True),
)

CPU_SCENARIOS: tuple[Scenario, ...] = (
    Scenario("C1 mob+mnas+lenet", (("mobilenetv2", "mobilenetv2"), ("mnasnet", "mnasnet"), ("lenet", "lenet"))),
    Scenario("C2 goog+mob", (("googlenet", "googlenet"), ("mobilenetv2", "mobilenetv2"))),
    Scenario("C3 res+mob", (("resnet50", "resnet50"), ("mobilenetv2", "mobilenetv2"))),
)


def profiles_for(scenario: Scenario, base: list[Profile]) -> list[Profile]:
    """Profiles renamed to the scenario's model names (the game app runs six LeNets)."""
    out = []
    for name, source in scenario.models:
        out += [replace(p, model=name) for p in base if p.model == source]
    return out


def write_readme_section(marker: str, text: str, readme: Path = Path(__file__).parent / "README.md") -> None:
    """Replace the text between the <!-- MARKER --> and <!-- /MARKER --> lines of a README."""
    if not readme.exists():
        return
    body = readme.read_text()
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    if start in body and end in body:
        readme.write_text(body[: body.index(start) + len(start)] + "\n" + text + "\n" + body[body.index(end) :])
