"""CLI subcommands that talk to a running server: `status` (its plan, slices, SLO attainment and,
with prices, its cost) and `query` (a model-less request). The main `modelplex` CLI registers them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

from modelplex.core.errors import ModelplexError


def _client_headers(args: argparse.Namespace) -> dict[str, str]:
    """The Authorization header of a CLI call to a server: --token-file, else the environment."""
    from modelplex.serving.auth import ADMIN_TOKEN_ENV, INFER_TOKEN_ENV, read_token

    token = read_token(Path(args.token_file) if args.token_file else None, ADMIN_TOKEN_ENV, "--token-file")
    if token is None:
        token = read_token(None, INFER_TOKEN_ENV, "--token-file")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _client_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """An SSL context trusting --ca-file (a self-signed server certificate), else the system's."""
    import ssl

    if not args.ca_file:
        return None
    try:
        return ssl.create_default_context(cafile=args.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ModelplexError(f"--ca-file {args.ca_file}: not a readable PEM certificate ({exc})") from None


def _server_json(url: str, args: argparse.Namespace, body: bytes | None = None, timeout_s: float = 60.0) -> Any:
    """GET (or POST `body` to) a modelplex server, with the token and CA of `args`; its errors
    become one readable line."""
    import json
    import urllib.error
    import urllib.request

    headers = _client_headers(args)
    if body is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s, context=_client_tls(args)) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        if exc.code == 401:
            raise ModelplexError(f"not authorised (401): {message}; pass --token-file or set MODELPLEX_ADMIN_TOKEN") from None
        raise ModelplexError(f"request refused ({exc.code}): {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ModelplexError(f"cannot reach a modelplex server at {url}: {exc}") from None


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from modelplex.cli_plan import load_prices, load_profiles
    from modelplex.planning.cost import cost_lines
    from modelplex.serving.status_view import format_status, status_cost

    prices = load_prices(args.prices) if args.prices else None  # bad prices fail before the server is asked
    profiles = load_profiles(args.profiles) if args.profiles else None
    doc = _server_json(args.url.rstrip("/") + "/v2/plan", args, timeout_s=10.0)
    cost = status_cost(doc, prices, profiles) if prices is not None else None
    if args.json:
        print(json.dumps({**doc, "cost": cost.to_json()} if cost is not None else doc, indent=2))
        return 0
    print(format_status(doc))
    if prices is not None:
        print("\n".join(["", *(cost_lines(cost) if cost is not None else ["cost: the server serves no plan"])]))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """A model-less query: the task, a latency target and an accuracy floor; prints who served it."""
    import json

    import numpy as np

    from modelplex.core.tensors import DataType

    path = Path(args.input)
    if not path.is_file():
        raise ModelplexError(f"input file {path} does not exist")
    try:
        if path.suffix == ".npz":
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
        elif path.suffix == ".npy":
            arrays = {args.input_name: np.load(path)}
        else:
            raise ModelplexError(f"input file {path}: use .npy (one input, named by --input-name) or .npz (by name)")
    except (OSError, ValueError) as exc:
        raise ModelplexError(f"cannot read {path}: {exc}") from None
    inputs = []
    for name, arr in arrays.items():
        dtype = DataType.from_numpy(arr.dtype)
        inputs.append({"name": name, "shape": list(arr.shape), "datatype": dtype.value, "data": arr.reshape(-1).tolist()})
    params: dict[str, float] = {"latency_ms": args.latency_ms}
    if args.min_accuracy is not None:
        params["min_accuracy"] = args.min_accuracy
    body = json.dumps({"inputs": inputs, "parameters": params}).encode()
    doc = _server_json(f"{args.url.rstrip('/')}/v2/tasks/{args.task}/infer", args, body)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    p = doc.get("parameters", {})
    print(f"served by {doc['model_name']} variant {p.get('variant')} ({p.get('precision')}, accuracy {p.get('accuracy')})")
    for out in doc["outputs"]:
        data = np.asarray(out["data"]).reshape(out["shape"])
        top = data.reshape(data.shape[0], -1).argmax(axis=1).tolist() if data.size else []
        print(f"  {out['name']} {out['datatype']} {out['shape']}  top-1 per row: {top}")
    return 0


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token-file", default=None,
                   help="send 'Authorization: Bearer <token>' with this file's token "
                        "(default: $MODELPLEX_ADMIN_TOKEN, else $MODELPLEX_INFER_TOKEN)")
    p.add_argument("--ca-file", default=None, help="trust this PEM certificate for an https:// --url (a self-signed server)")


def add_subcommands(sub: Any) -> None:
    p = sub.add_parser("status", help="show a running server's plan, slices and SLO attainment")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="server address (default http://127.0.0.1:8000)")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.add_argument("--prices", default=None, help="also report the plan's cost: gpu=2.50/h,cpu-core=0.04/h or a YAML/JSON file")
    p.add_argument("--profiles", default=None, help="with --prices: profiles JSON/CSV to price the exclusive baseline too")
    _client_options(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("query", help="model-less query: a task, a latency target and an accuracy floor")
    p.add_argument("--task", required=True, help="task name, e.g. digits")
    p.add_argument("--latency-ms", type=float, required=True, help="latency target of the request")
    p.add_argument("--min-accuracy", type=float, default=None, help="accuracy floor (0..1)")
    p.add_argument("--input", required=True, help=".npz with one array per input name, or .npy for one input")
    p.add_argument("--input-name", default="input", help="input name for a .npy file (default: input)")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="server address (default http://127.0.0.1:8000)")
    p.add_argument("--json", action="store_true", help="print the whole response")
    _client_options(p)
    p.set_defaults(func=cmd_query)
