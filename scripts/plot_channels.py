"""Draw examples of kws-train --channel-eq's random microphone responses (docs/channel_responses.png).

    python scripts/plot_channels.py [--out docs/channel_responses.png] [--n 8] [--seed 0] [--max-db 12]
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/channel_responses.png", help="PNG to write")
    p.add_argument("--n", type=int, default=8, help="responses to draw")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-db", type=float, default=12.0, help="--channel-eq-db")
    p.add_argument("--sample-rate-hz", type=int, default=8000)
    args = p.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kws.train.channel import random_responses

    n_fft = 2 * args.sample_rate_hz
    responses = random_responses(args.n, n_fft=n_fft, sample_rate_hz=args.sample_rate_hz, max_db=args.max_db,
                                 rng=np.random.default_rng(args.seed))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / args.sample_rate_hz)
    keep = freqs >= 50
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for r in responses:
        ax.semilogx(freqs[keep], 20 * np.log10(r[keep]), lw=1.2)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("gain (dB, before the level is restored)")
    ax.set_ylim(-45, 30)
    ax.set_xlim(50, args.sample_rate_hz / 2)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"{args.n} random microphone channels (--channel-eq, --channel-eq-db {args.max_db:g})")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
