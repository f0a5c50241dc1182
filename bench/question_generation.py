"""Decoding (passage, answer, question) triples: batched across passages against a per-passage loop (spec 02, gotcha 4).

    python bench/question_generation.py [--passages 200] [--reps 3] [--threads 1] [--beam 3]

Model of the question_generation local budget (3 layers, d = 96, 4 heads, FFN 384, 3,007 words), untrained, on
random passages of 20-48 tokens. Greedy decoding for both parts (the reference decodes greedily only) with the
answer capped at 6 tokens and the question at 12; an untrained model rarely emits [SEP], so nearly every row runs
to both caps (the worst case). Prints the median seconds of `generate` (every passage in one batch, the study's
path) and of `generate_naive` (one passage at a time, the packed layout re-run at every token), per passage, and
their ratio; it also checks that both decode the same pairs. With `--beam k` it then times the question's beam
search of width k after the batched greedy answers: `beam_search` (all passages' beams in one batch with the cache)
against `beam_search_naive` (one passage at a time, every hypothesis re-run from scratch), on the first
`--beam-passages` passages, and checks they agree.
"""

import argparse
import statistics
import time

import torch

from core.seq2seq import DECODINGS, Seq2Seq, beam_search, beam_search_naive, generate, generate_naive

VOCAB, WIDTH, MAX_A, MAX_Q = 3007, 48, 6, 12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--beam", type=int, default=0, help="also time a question beam search of this width")
    parser.add_argument("--beam-passages", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Seq2Seq(VOCAB, 1 + WIDTH + MAX_A + MAX_Q + 3, 96, 4, 3, 384).eval()
    g = torch.Generator().manual_seed(1)
    passages = [
        torch.randint(5, VOCAB, (int(n),), generator=g).tolist()
        for n in torch.randint(20, WIDTH + 1, (args.passages,), generator=g)
    ]
    greedy = DECODINGS["greedy_both"]

    def batched():
        return generate(model, passages, "AQ", greedy, MAX_A, MAX_Q, torch.Generator(), width=WIDTH)

    def loop():
        return [generate_naive(model, p, "AQ", greedy, MAX_A, MAX_Q) for p in passages]

    times = {name: timed(fn, args.reps) for name, fn in (("batched", batched), ("loop", loop))}
    same = times["batched"][1] == times["loop"][1]
    steps = statistics.mean(len(a) + len(q) + 2 for a, q in times["batched"][1])
    print(f"{args.passages} passages, {args.threads} thread(s), mean {steps:.1f} generated tokens per passage")
    for name in ("batched", "loop"):
        s = times[name][0]
        print(f"  {name:8s} {s:8.3f} s   {1000 * s / args.passages:7.2f} ms per passage")
    print(f"  loop / batched = {times['loop'][0] / times['batched'][0]:.1f}x; identical pairs: {same}")
    if args.beam:
        n = min(args.beam_passages, len(passages))
        answers = [a for a, _ in times["batched"][1][:n]]
        pairs = list(zip(passages[:n], answers, strict=True))
        beams = {
            "batched": timed(lambda: beam_search(model, passages[:n], answers, MAX_Q, args.beam, WIDTH), args.reps),
            "loop": timed(lambda: [beam_search_naive(model, p, a, MAX_Q, args.beam) for p, a in pairs], 1),
        }
        print(f"question beam search, width {args.beam}, {n} passages (after the greedy answers)")
        for name in ("batched", "loop"):
            s = beams[name][0]
            print(f"  {name:8s} {s:8.3f} s   {1000 * s / n:7.2f} ms per passage")
        agree = beams["batched"][1] == beams["loop"][1]
        print(f"  loop / batched = {beams['loop'][0] / beams['batched'][0]:.1f}x; identical questions: {agree}")


def timed(fn, reps: int) -> tuple[float, object]:
    """Median seconds of `reps` calls after a warm-up call, and the warm-up's output."""
    out = fn()
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), out


if __name__ == "__main__":
    main()
