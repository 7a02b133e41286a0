"""
The resilience demo: SaaS LiteLLM job workflows, plainly and through the profile.

It starts an emulator of the SaaS LiteLLM API on 127.0.0.1 with a mix of
faults (rate limits, plain-text and HTML 5xx, slow answers, dropped
connections, failures mid-stream), runs a few hundred job workflows twice,
once with the helpers of the API's error-handling page and once with
`resilience.profiles.saas_litellm`, and prints them side by side.

Run it with ``python examples/demo.py`` (the README's first command), or
``python -m resilience demo``; ``--help`` lists the options (``--seed``,
``--workflows``, ``--workers``, ``--time-scale``, ``--outage``). It needs
requests: ``pip install -e '.[requests]'``.

The code is in ``resilience/profiles/saas_litellm/demo.py``; the workflow
through the profile is this much::

    from resilience.profiles import saas_litellm as saas

    api = saas.session(API_URL, VIRTUAL_KEY)
    job = api.post("/api/jobs/create", json={"team_id": TEAM, "job_type": "demo"}).json()
    job_id = job["job_id"]
    with saas.JobGuard(api, job_id):          # completes the job, "failed" if the block raises
        api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT).json()
"""

from __future__ import annotations

import sys

from resilience.profiles.saas_litellm.demo import main

if __name__ == "__main__":
    sys.exit(main())
