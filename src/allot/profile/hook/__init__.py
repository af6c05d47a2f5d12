"""The task-side hook of profiled jobs: its folder goes first on a profiled task's
``PYTHONPATH`` so that Python loads ``sitecustomize`` from it (see ``allot.profile.capture``)."""
