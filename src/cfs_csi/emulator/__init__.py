"""A CFS cloud-API emulator that the official Tencent Cloud SDK talks to over real HTTP.

It lets the driver's ``tencent`` backend be tested end to end, and lets users try the driver without a cloud
account. Only the four actions the driver uses are emulated (see ``docs/emulator.md``). Import direction:
``emulator -> volume`` only; nothing in the driver imports the emulator.
"""
