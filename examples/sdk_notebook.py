"""A notebook's cells, with the SDK: submit, follow the loss as it goes down, fetch the
weights. Run it with a server up (`make run`) and the shapes dataset made
(`python examples/make_dataset.py ~/datasets/shapes`)."""

# %% Connect: CLOUDTUNE_URL / CLOUDTUNE_API_KEY, or what `cloudtune login` saved.
import json
from pathlib import Path

from cloudtune.client import Client, errors, models

client = Client()
print(client.me().username)

# %% Submit the example config (a re-run with the same key answers the same job).
body = json.loads(Path(__file__).with_name("reference-lora.json").read_text())
try:
    job = client.submit(body, provider="local", idempotency_key="notebook-shapes-1")
except errors.CostLimitExceeded as refused:
    raise SystemExit(f"refused: {refused.message}") from None
print(job.job_id, job.status)

# %% Follow it: the loss at each poll.
losses: list[float] = []


def note(update: models.Job) -> None:
    if update.progress.loss is not None:
        losses.append(update.progress.loss)


done = client.wait(job.job_id, interval=1.0, on_update=note)
print(done.status, f"loss {losses[0]:.3f} → {losses[-1]:.3f}" if losses else "")

# %% The trained files, home.
for item in client.outputs(job.job_id).files:
    client.download(item, Path("shapes-lora"))
print(sorted(p.name for p in Path("shapes-lora").iterdir()))
