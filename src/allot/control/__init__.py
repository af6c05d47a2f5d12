"""The live control plane: use cases (``services``), the scheduling loop (``loop``), carrying
Plans out (``apply``) and recovering after a restart (``reconcile``), over the ports in
``ports`` that the store and executor adapters implement."""
