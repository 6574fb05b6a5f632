"""The Adapt-then-Unlearn method's core, usable without any loss class or training loop.

* `params` — which generator parameters take part (`synthesis` / `all`) and the distances to θ_N;
* `fisher` — the diagonal Fisher of the EWC penalty;
* `repulsion` — IL2 / NL2 / EL2 as pure functions of a distance;
* `architecture` — do two generators have the same layout (by tensor names and shapes);
* `extrapolate` — the parameter-space baseline θ_G + γ(θ_G − mean θ_N);
* `negative_fakes` — the negatives that Stage 2's D may also learn to call fake (`--negatives`);
* `options` — the one table of the method's options and their defaults (read by both train.py's);
* `recipe` — the official stage recipe (kimg, batch, learning rates, ...) where the user gave none.

Importing this package imports nothing heavy; import the modules you need.
"""
