"""The built-in sandbox: stateful simulations of Pax8, ConnectWise Manage, HaloPSA and Autotask that
speak the real APIs' shapes (served through `httpx.MockTransport`, so the real clients run unchanged),
and a deterministic demo MSP to fill them with."""
