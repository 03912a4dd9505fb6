"""Commissioning: a technician's session that tests every button of a gateway, and the report it leaves.

Modules: ``settings`` (``[commissioning]``), ``results`` (a button's checks and the verdict, no I/O),
``store`` (the sessions, results, reports and each button's last test), ``report`` (the PDF),
``view`` (the pages and ``/api/commissioning/``). Nothing here is imported by ``__init__`` itself, so
supervision can read the store without loading the views.
"""
