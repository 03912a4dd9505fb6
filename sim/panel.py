"""The demo's virtual button panel: press simulated wall buttons, watch their LEDs.

Pressing drives the button's gpiozero mock pin low (and releases it after the
hold-to-confirm time), exactly as a wired button pulls a Pi's pin to ground;
the LED shown is the gateway's real LED device on its mock pin.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from flask import Flask, abort, jsonify, render_template_string, request
from gpiozero.pins.mock import MockFactory

from gateway.app import Gateway
from gateway.config import ButtonConfig, LoraButtonConfig

from .loops import VirtualLoops, drive
from .mosquitto import wait_for_port
from .radio import VirtualNode


def _identity(gateway: Gateway, config: ButtonConfig | LoraButtonConfig) -> dict[str, Any]:
    """What the panel shows of any button, wired or LoRa: who it is and where."""
    return {
        "id": config.id,
        "gw": gateway.config.id,
        "kind": str(config.kind),
        "label": config.label,
        "site": config.site.name,
    }


@dataclass
class VirtualButton:
    gateway: Gateway
    factory: MockFactory
    config: ButtonConfig
    #: The virtual ADC of the gateway's supervised loops (``sim/loops.py``), if any button has one.
    loops: VirtualLoops | None = None

    def press(self) -> float:
        """Press (and hold, for hold-to-confirm buttons); returns how long it is held."""
        hold = self.config.hold_s + 0.3 if self.config.hold_s else 0.15
        loops = self.loops or VirtualLoops(self.factory, ())
        drive(self.factory, loops, self.config, True)
        timer = threading.Timer(hold, drive, (self.factory, loops, self.config, False))
        timer.daemon = True
        timer.start()
        return hold

    def view(self) -> dict[str, Any]:
        wired = self.gateway.buttons.get(self.config.id)
        led = wired.led if wired is not None else None
        return {
            **_identity(self.gateway, self.config),
            "hold_s": self.config.hold_s,
            "pattern": str(self.gateway.pattern(self.config.id)),
            "led_lit": bool(led.is_lit) if led is not None else None,
            "transport": "gpio",
        }


@dataclass
class VirtualLoraButton:
    """A LoRa button of the demo: the reference firmware on a virtual node."""

    gateway: Gateway
    node: VirtualNode
    config: LoraButtonConfig

    def press(self) -> float:
        hold = self.node.spec.hold_ms / 1000 + 0.3 if self.node.spec.hold_ms else 0.15
        # A deliberate press: held at least this long, and until the firmware has it.
        threading.Thread(target=self.node.press, args=(hold,), kwargs={"confirm": True}, daemon=True).start()
        return hold

    def view(self) -> dict[str, Any]:
        return {
            **_identity(self.gateway, self.config),
            "hold_s": self.node.spec.hold_ms / 1000,
            "pattern": self.node.pattern,
            "led_lit": bool(self.node.led.value()),
            "transport": f"lora ({self.node.spec.module}, node {self.node.spec.node_id})",
        }


PanelButton = VirtualButton | VirtualLoraButton


PAGE = """<!doctype html>
<html lang="id"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Siaga — panel tombol simulasi</title>
<style>
 body{font-family:system-ui,sans-serif;background:#14181c;color:#eee;margin:0;padding:1rem}
 h1{font-size:1.3rem} .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(17rem,1fr));gap:1rem}
 .b{background:#1f262d;border-radius:10px;padding:1rem;border-left:8px solid #ff4d2e}
 .b.sapa{border-left-color:#b57bff} .site{font-weight:700} .muted{color:#9aa5ae;font-size:.9rem}
 button{font-size:1.1rem;font-weight:800;padding:.7rem 1.2rem;border-radius:999px;border:4px solid #600;
   background:#e0301e;color:#fff;cursor:pointer;margin-top:.6rem}
 .sapa button{background:#7d3fd1;border-color:#3a1a66}
 .led{display:inline-block;width:1.2rem;height:1.2rem;border-radius:50%;background:#333;border:2px solid #555;
   vertical-align:middle;margin-right:.4rem}
 .led.on{background:#4cff7a;box-shadow:0 0 12px #4cff7a}
 code{color:#ffd36b}
</style></head><body>
<h1>Siaga — panel tombol simulasi <span class="muted">(simulated button panel)</span></h1>
<p class="muted">Tekan tombol di bawah, lalu lihat papan alarm di
<a href="{{ board }}" style="color:#8cc8ff">{{ board }}</a>.
LED: berkedip cepat = terkirim, berkedip lambat = diterima, menyala = bantuan datang, mati = selesai.<br>
Dari terminal: <code>siaga-sim press &lt;id-tombol&gt;</code></p>
<div class="grid" id="grid"></div>
<script>
const names={off:"mati",sending:"mengirim…",received:"diterima",help_coming:"bantuan datang"};
async function refresh(){
  const r=await fetch("api/buttons"); const data=await r.json(); const grid=document.getElementById("grid");
  if(!grid.dataset.built){
    grid.innerHTML="";
    for(const b of data.buttons){
      const d=document.createElement("div"); d.className="b "+b.kind; d.dataset.id=b.id;
      d.innerHTML=`<div class="site"></div><div class="muted lbl"></div><div class="muted"><code></code></div>
        <div><span class="led"></span><span class="pat"></span></div><button type="button"></button>`;
      d.querySelector(".site").textContent=(b.kind==="fire"?"KEBAKARAN — ":"SAPA — ")+b.site;
      d.querySelector(".lbl").textContent=(b.label||"")+" · "+b.transport;
      d.querySelector("code").textContent=b.id+" @ "+b.gw;
      const btn=d.querySelector("button"); btn.textContent=b.hold_s?`TAHAN ${b.hold_s} dtk`:"TEKAN";
      btn.onclick=()=>fetch(`api/buttons/${encodeURIComponent(b.id)}/press`,{method:"POST",
        headers:{"Content-Type":"application/json"},body:"{}"});
      grid.append(d);
    }
    grid.dataset.built="1";
  }
  for(const b of data.buttons){
    const d=grid.querySelector(`[data-id="${CSS.escape(b.id)}"]`); if(!d) continue;
    d.querySelector(".led").classList.toggle("on",!!b.led_lit);
    d.querySelector(".pat").textContent=names[b.pattern]||b.pattern; d.dataset.pattern=b.pattern;
  }
}
refresh(); setInterval(refresh,150);
</script></body></html>"""


def create_panel_app(buttons: dict[str, PanelButton], board_url: str) -> Flask:
    app = Flask("siaga-panel")

    @app.get("/")
    def page() -> str:
        return render_template_string(PAGE, board=board_url)

    @app.get("/api/buttons")
    def list_buttons() -> Any:
        return jsonify(buttons=[button.view() for button in buttons.values()])

    @app.post("/api/buttons/<button_id>/press")
    def press(button_id: str) -> Any:
        # A JSON body forces a CORS preflight, so another web page cannot press buttons.
        if not request.is_json:
            abort(415)
        button = buttons.get(button_id)
        if button is None:
            return jsonify(error="unknown_button", known=sorted(buttons)), 404
        held = button.press()
        return jsonify(pressed=button_id, held_s=held), 202

    return app


class PanelServer:
    def __init__(self, buttons: dict[str, PanelButton], *, host: str, port: int, board_url: str) -> None:
        import uvicorn
        from a2wsgi import WSGIMiddleware

        self.url = f"http://{host}:{port}/"
        self.host, self.port = host, port
        app = WSGIMiddleware(create_panel_app(buttons, board_url), workers=4)  # type: ignore[arg-type]
        config = uvicorn.Config(app, host=host, port=port, lifespan="off", log_config=None, access_log=False, ws="none")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="panel", daemon=True)

    def start(self) -> PanelServer:
        self._thread.start()
        wait_for_port(self.host, self.port, 10)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)
