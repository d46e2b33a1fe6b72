"""Run-time monitoring (RecIS API): metric clients, GPU peak-FLOPS lookup, the startup FLOPS/MFU
estimate and the reporter the training hooks write through.

Metrics stay in the process (:func:`recis.monitor.monitor.GetFactory`); shipping them to a
monitoring service (RecIS's internal one) is left to the user. Submodules are imported on use.
"""
