"""Typed clients for the vendor (Pax8) and the PSAs (ConnectWise Manage, HaloPSA, Autotask).

Each module speaks one service's own HTTP API and maps it to the engine's types
(`engine.scenario`); nothing outside this package knows a service's field names.
"""
