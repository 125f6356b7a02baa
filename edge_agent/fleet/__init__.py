"""Over-the-air model updates: request, download to a staging slot, verify, self-test, swap, probation, rollback.

Steps in order (each published on the retained `model` topic and as a `model_update` event):
requested -> downloading -> verified -> loaded -> self_tested -> swapped -> probation -> promoted,
or failed (before the swap: the old model never stopped) / rolled_back (after it).
"""
