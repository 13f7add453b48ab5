"""Model-quality benchmark: decoders on real recorded music, scored on a later, unseen excerpt.

Data: :func:`replay.music_sources.packaged_tracks` (real music, Debian ``singularity-music``), each
track simulated as a song heard by the same listeners three times — an early excerpt to train on, the
excerpt after it to validate on and a later excerpt (never trained on or validated on, its own background
EEG) to test on — at several evoked shares.

For every evoked share and split kind the same run:

1. splits the early excerpt (``block`` — held-out chunks per song shared by every listener —,
   ``subject`` or ``song``); the validation excerpt's windows of the split's validation part (every
   listener and song for block, the validation listeners for subject, the validation song for song)
   replace that part (``train --val-data``, :data:`LATER_VALIDATION`), and the target offset is picked
   on them (:func:`offline_training.target_lag.choose_target_offset`, scoring the interior frames the
   bench scores); every model uses that offset;
2. trains every model with the project's own ``train`` (ridge ``linear`` in closed form, its penalty
   chosen on the validation excerpt, the deep ones with Adam and early stopping on it), each with its
   recipe (:data:`FULL` ``models``: epochs, loss, augmentation, hyper-parameters, the EEG it reads, and
   the splits it runs on); the ``ensemble`` row mixes the split's own trained denoised ridge and
   ``sourcenet`` (where they ran) with extra members it trains itself, the ridge's weight chosen on
   validation (:class:`offline_training.models.ensemble.Ensemble`, one ONNX file). A row with ``align``
   trains and is scored on a copy of every excerpt with each listener's EEG multiplied by that listener's
   matrix, estimated on the listeners' early excerpt without labels: Euclidean alignment (``ea``) or
   multi-listener shared-response denoising (``mcca``, :mod:`offline_training.mcca`), which the deep
   recipes read;
3. scores each exported ONNX model on the later excerpt of the split's test part (block: every
   listener and song; subject: the held-out listeners; song: the held-out songs) by dynamic r
   (:mod:`offline_training.metrics`, interior frames of 1-s windows, per block), the mean over windows
   starting 0.1, 0.3, 0.5, 0.7 and 0.9 s past each whole second (:data:`SCORING_PHASES_S`: never the
   whole-second grid the models train on, whose score is kept beside as ``on_grid``), beside:

   - the same model on shuffled test EEG (windows permuted: no information about the moment),
   - the global mean mel and the song mean mel of the training part (the means the model file
     carries; song mean only where the test song was trained on),
   - ridge, and each model's ratio to ridge.

Goals (issue 14; reported, never asserted): on the block split the best model ≥ 1.3× ridge and every
deep model > ridge; on the subject split (unseen listener) the best ≥ 1.2× ridge. "The best model" is the
row named before any test score (:data:`HEADLINE`, the ensemble), not the row that scores highest on test.

The module runs past 500 lines because each recipe constant's docstring keeps its validation record
(what was measured beside ridge, what was kept and what not); the code is under 350 lines.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from eegmusic.stream.atomic import temporary_directory

logger = logging.getLogger(__name__)

SOURCENET = {"epochs": 20, "patience": 4, "loss": "mse+pearson", "model_config": {"feature_norm": "batch"}}
"""The sourcenet recipe chosen on validation data (a later excerpt, 90-120 s, never the test excerpt):
batch-normalised response features (layer norm erased each frame's response strength: 0.188 → 0.303
at the 10 % share, block split, ridge 0.288), MSE + per-band Pearson loss (0.310), up to 20 epochs.
Tried after and not kept (denoised EEG, the 90-120 s excerpt, block; raw ridge 0.309 in the same run):
up to 60 epochs, since the recipe's run ended at its 20th epoch still improving — early stopping ended
it at epoch 24 with its best at epoch 20 (0.342 either way; the ensemble of :data:`ENSEMBLE_DENOISED`
with its three sourcenets at 60 epochs 0.388 against 0.387)."""

CONVNET = {"epochs": 10, "patience": 3, "loss": "mse+pearson", "skip": "linear"}
"""The convnet recipe chosen on validation data (the 90-120 s excerpt; 10 %, offset 0.15 s; ridge 0.288
block, 0.248 subject): a skip path through the split's own trained ridge, frozen, so the network learns
the residual (:class:`offline_training.models.convnet.ConvNet` ``skip``; plain convnet 0.278, with the
skip 0.291), MSE + per-band Pearson loss and up to 10 epochs (0.304; subject split 0.312 with 5 MSE
epochs). Tried and not kept: training windows at a 0.5-s hop (0.277), a subject embedding (0.302 with
5 MSE epochs, 0.272 with this recipe: within seed noise, so measured in its own row instead).
Tried after and not kept (denoised EEG with the denoised ridge as skip, the 90-120 s excerpt, block;
raw ridge 0.309 in the same run; this recipe 0.319, its :data:`ENSEMBLE_DENOISED` 0.387), against the
convnet's overfitting (best at epoch 2, training loss 0.91 against validation 1.49 at epoch 3): dropout
0.5 instead of 0.1, 0.318 (ensemble 0.373); half the width (channels 64, 64, 128, 128, hidden 256) with
dropout 0.3, 0.332, trained and scored in 65 s against the full width's 107 s (ensemble 0.385): better
alone, not in the mix."""

RCNN = {"epochs": 10, "patience": 3, "loss": "mse+pearson", "model_config": {"hidden": 128}, "ema": 0.99}
"""The rcnn recipe (:class:`offline_training.models.rcnn.RCNN`: convolutions, a bidirectional LSTM, dense
frames), the model issue 14's own check measured below ridge on real music. Measured on validation (the
90-120 s excerpt, 10 %; ridge on raw EEG 0.309 block / 0.320 subject) with the convnet's loss and epochs:
raw EEG 0.242 block, MCCA-denoised EEG 0.317 block / 0.296 subject (41 s to train), so it reads denoised
EEG (:data:`DENOISED`). As a fourth member of :data:`ENSEMBLE_DENOISED` it lifted the ensemble from 0.385
to 0.390 (block) and 0.355 to 0.364 (subject); a second rcnn seed added nothing (0.389 block). The
``transformer`` with the same recipe stayed far below ridge on validation (raw EEG 0.194, denoised 0.177,
block), so it is not a row: it would need its own recipe work.

Then, since the rcnn fell below ridge on the test excerpt at split and training seeds 1 and 2 (a check read
on test, which chose nothing), its variants were measured on the validation excerpt at seeds 0 / 1 / 2
(block; raw ridge 0.309 / 0.312 / 0.309; the recipe above 0.317 / 0.279 / 0.288, mean 0.295): 128 LSTM
units per direction instead of 64, 0.322 / 0.291 / 0.316 (mean 0.310, kept); dropout 0.3, 0.311 / 0.279 /
0.304; learning rate 5e-4 for up to 20 epochs, 0.279 / 0.263 / 0.281; up to 20 epochs, 0.308 / 0.279 / 0.291;
a skip path through the denoised ridge (:mod:`offline_training.models.skip`; that ridge alone 0.341 / 0.336
/ 0.340), 0.302 / 0.312 / 0.299 — training the residual lowered the ridge it started from. As the
:data:`ENSEMBLE_DENOISED` member (seeds 0 / 1): the 64-unit rcnn 0.392 / 0.391, the 128-unit one 0.392 /
0.390, the skip one 0.388 / 0.388, so the mix is indifferent and the row decides.

Then a moving average of the weights (``train --ema``, :data:`CONVNET_EMA`), on the same validation data
and seeds (the 128-unit recipe above 0.322 / 0.291 / 0.316, mean 0.310, below raw ridge at seed 1): decay
0.99 (a half-life of 69 steps, about three epochs) 0.323 / 0.314 / 0.315 (mean 0.317, above raw ridge at
every seed; kept), 0.97 0.313 / 0.306 / 0.308, 0.9 0.316 / 0.303 / 0.305. As the :data:`ENSEMBLE_DENOISED`
member: 0.390 / 0.392 / 0.381 against 0.392 / 0.390 / 0.383, indifferent again."""

ENSEMBLE = {"reuse": ("linear", "sourcenet", "convnet")}
"""An earlier ensemble row, superseded by :data:`ENSEMBLE_DENOISED` and kept for its figures: the split's
trained ridge, sourcenet and convnet (those trained on the split), mixed. On the validation excerpt (10 %,
block; convnet without its skip path then): ridge 0.288, sourcenet 0.310, convnet 0.278; ridge + sourcenet
0.317, all three 0.345; a second sourcenet seed added +2.5 % for 3 more minutes per split (left out to fit
the full run in an hour). Its weights are chosen on the split's validation part: on the subject split (2
validation listeners) that choice scored below sourcenet alone at 3 % and 1 % in the full run."""

EUCLIDEAN = {"model": "linear", "align": "ea"}
"""Ridge on Euclidean-aligned EEG (:mod:`offline_training.alignment`: each listener whitened by the
covariance of its own early excerpt, unlabelled, inside the data's rank subspace). On validation it fell
far below plain ridge (0.288 → 0.115 block, 0.248 → 0.110 subject; 0.199 block with shrinkage 0.3;
with the rank-subspace whitening 0.309 → 0.124 block, 0.320 → 0.143 subject): not the average
reference's null direction but each listener's own background reshaping the shared evoked topography
(see the alignment module). Kept as a measured row, not used by the other models."""

MCCA = {"n_components": 2, "n_pcs": 90}
"""Shared-response denoising (:mod:`offline_training.mcca`): each listener's EEG projected on the
components it shares with the other listeners of the same songs (early excerpt, unlabelled) and back to
the channels. Chosen on validation (the 90-120 s excerpt, 10 %; ridge on raw EEG 0.309 block / 0.320
subject): denoised ridge by components kept of principal components per listener: 2 of 90 0.341 /
0.342 (kept), 3 of 90 0.332 / 0.337, 4 of 90 0.331 / 0.336, 6 of 90 0.329 / 0.334, 2 of 124 0.339 /
0.340, 4 of 60 0.333 / 0.342, 8 of 60 0.329 / 0.331, 16 of 60 0.324 / 0.325 (30 principal components:
below 60 throughout); Euclidean-aligned ridge 0.124 / 0.143 on the same data.

Measured later and not kept (scored off the grid, :data:`SCORING_PHASES_S`, on the same 90-120 s excerpt,
block, seed 0, with this bench's recipes): one component instead of two raised the denoised ridge from
0.3131 to 0.3169 at 3 % (three components 0.3044) and from 0.3562 to 0.3597 at 10 %, but the ensemble
(:data:`ENSEMBLE_DENOISED`) at 3 % only from 0.3413 to 0.3428 (sourcenet 0.3312 → 0.3297; raw ridge
0.2563): 1.332× → 1.337× ridge, less than the spread of the 3 % block ratio over seeds on the test
excerpt (1.292-1.301×). Choosing the count per split on validation would cost every table a rerun for
that, so the recipe keeps two."""

DENOISED = {"align": "mcca"}
"""What the deep recipes read: MCCA-denoised EEG (:data:`MCCA`). On the validation excerpt (10 %,
block / subject; ridge on raw EEG 0.309 / 0.320), raw EEG → denoised: skip convnet 0.241 → 0.319 /
0.266 → 0.263, sourcenet 0.324 → 0.342 / 0.333 → 0.336, ensemble (ridge, sourcenet, convnet) 0.330 →
0.381 / 0.331 → 0.325 (with 4 components instead of 2: convnet 0.299 / 0.269, sourcenet 0.337 / 0.332,
ensemble 0.373 / 0.331). The ridge baseline (``linear``) stays on raw EEG; ``linear-mcca`` shows what
the denoising alone gives."""

RANDOM_PHASE = {"hop_s": 0.1, "epoch_fraction": 0.1}
"""Training windows at every phase of the second for the ``convnet``, ``convnet-ema``, ``convnet-subj`` and
``rcnn`` rows: windows at a 0.1-s hop, each Adam epoch a fresh tenth of them (``train --hop 0.1
--epoch-fraction 0.1``), so an epoch costs what a 1-s hop's does. These rows, trained on whole-second
windows, had learned the music at that grid's fixed phase and fell below ridge off it
(:data:`SCORING_PHASES_S`). Chosen on the validation excerpt (90-120 s, 10 %, block, scored off the grid;
raw ridge 0.322 / 0.324 / 0.322 at split and training seeds 0 / 1 / 2, denoised ridge, their skip path,
0.356 / 0.351 / 0.355): ``convnet`` 0.222 → 0.292 / – / 0.196 → 0.280 (0.203 → 0.298 at seed 1 with 20
epochs), ``convnet-ema`` 0.251 → 0.307 / 0.278 → 0.320 / 0.318 → 0.300 (mean 0.282 → 0.309), ``rcnn``
0.276 → 0.306 / – → 0.281 / 0.254 → 0.303, ``convnet-subj`` 0.279 / 0.316 (seeds 0 / 1);
on the grid they lost what the grid had given them (``convnet-ema`` 0.337 → 0.291, seed 0). Still below
ridge there, and below their own skip path: on the split's validation part, seconds of the same early
excerpt as the training windows, the trained residual scores above the skip (dynamic r 0.294 against
0.240, ``convnet-ema``, seed 0), and on the later excerpt below it — what the networks add is the music of
the training excerpt, not a better reading of the EEG.

Tried with it and not kept (the same data): up to 20 epochs (``convnet`` 0.292 / 0.298, ``convnet-ema``
0.304 / 0.306, ``rcnn`` 0.283 / 0.281), the best epoch by validation dynamic r (``convnet-ema`` with 20
epochs 0.321 / 0.306, ``rcnn`` 0.284 / 0.281); ``sourcenet``, whose filters slide along the window and
never leaned on the grid, 0.348 → 0.351 / 0.357 → 0.345; the ensemble of :data:`ENSEMBLE_DENOISED` with
random-phase sourcenets 0.373 → 0.373 / 0.370 → 0.369, and with random-phase ``convnet-ema`` and ``rcnn``
as members too 0.367 / 0.368."""

LATER_VALIDATION = {"select_by": "dynamic_r"}
"""Validation on the later excerpt (:data:`FULL` ``val_start_s``, 90-120 s: ``train --val-data``), and the
network rows (``convnet``, ``convnet-ema``, ``convnet-subj``, ``rcnn``) pick their epoch by its dynamic r
(``train --select-by dynamic_r``), with the epoch-0 rule: a skip network keeps its start, the denoised
ridge, unless an epoch beats it there. Why: the block split's validation chunks are seconds of the training
excerpt, and on them the networks' epochs beat their skip path by learning that excerpt's music; on a
later excerpt they do not, and there the validation loss (MSE + per-band Pearson, pooled over frames) and
dynamic r disagree: the trained skip convnet lowered the loss on the 90-120 s excerpt below its start's
yet scored dynamic r 0.290 there against its start's 0.356.

Chosen on a development excerpt that is neither the validation nor the test excerpt (200-260 s of the
same tracks and listeners, 10 %, block, seed 0; ridge 0.326, denoised ridge 0.357 in the same runs), the
row as in the last full run → with the 90-120 s excerpt validating by loss → by dynamic r: ``convnet``
0.297 → 0.307 → 0.357, ``convnet-ema`` 0.315 → 0.315 → 0.361, ``convnet-subj`` 0.292 → 0.357 → 0.357,
``rcnn`` 0.310 → 0.310 → 0.312 (with a skip path through the denoised ridge, by dynamic r: 0.357, kept, so
the ``rcnn`` row carries one), ``sourcenet`` 0.343 → 0.348 → 0.349 (left selecting by loss: within its
seeds' spread), ``ensemble`` 0.369 → 0.368. Every skip row but ``convnet-ema`` ends at its start: what the
networks learn beyond the denoised ridge does not carry to music they did not train on."""

CONVNET_EMA = {**CONVNET, **DENOISED, **RANDOM_PHASE, **LATER_VALIDATION, "model": "convnet",
               "skip": "linear-mcca", "ema": 0.97}
"""The ``convnet-ema`` row: the ``convnet`` row's recipe with a moving average of its weights over optimiser
steps (decay 0.97, a half-life of 23 steps, about one epoch at this size), which is what is validated and
kept (``train --ema``, :func:`offline_training.loop_regression.weight_average`). Chosen on the validation
excerpt (90-120 s, 10 %, block, split and training seeds 0 / 1 / 2; raw ridge 0.309 / 0.312 / 0.309, the
``convnet`` row's recipe 0.319 / 0.306 / 0.291, mean 0.305): decay 0.97 0.337 / 0.357 / 0.371 (mean 0.355,
kept); 0.9 0.330 / 0.330 / 0.333; 0.99 0.348 / 0.334 / 0.337. The convnet overfits within two or three
epochs, and the average is a smoother point than any one step. A row of its own rather than the ``convnet``
row's recipe, because the ensemble is better with the plain convnet: its members' average already removes
what the weight average removes, and the plain one adds more diversity (ensemble of :data:`ENSEMBLE_DENOISED`
0.392 / 0.390 / 0.383; with the sourcenet and convnet rows at decay 0.97 0.386 at seed 0; with every member
at 0.97 0.386 / 0.390 / 0.381, at 0.9 0.389 / 0.393 / 0.392 — within the seeds' spread, so not kept).
Measured on the same data and not kept: sourcenet at decay 0.97 0.349 / 0.356 / 0.350 (the recipe 0.342 /
0.354 / 0.347; it would change the ensemble's members), at 0.9 0.347 / 0.355 / 0.351; rcnn at 0.97 0.313 /
0.306 / 0.308, at 0.9 0.316 / 0.303 / 0.305 (the recipe 0.322 / 0.291 / 0.316), at 0.99 0.323 (seed 0);
the best epoch picked by validation dynamic r instead of the validation loss (``train --select-by
dynamic_r``; seed 0): convnet 0.319 (0.319), with decay 0.97 0.372; sourcenet 0.349 (0.342); rcnn 0.321
(0.322), with decay 0.97 0.315; rcnn with a skip path through the denoised ridge 0.321, with decay 0.97
0.318 (the skip's start alone 0.341); their ensembles 0.390 and, at decay 0.97, 0.383. The plain
ensemble's output mixed with convnet-ema's, the weight picked on the excerpt itself (an upper bound): at best
0.394 / 0.395 / 0.390 (weight 0.1-0.3), against 0.403 that 1.3× raw ridge would need there."""

CONVNET_SUBJ = {**CONVNET, **DENOISED, **RANDOM_PHASE, **LATER_VALIDATION, "model": "convnet",
                "skip": "linear-mcca", "subject_conditioning": True, "shares": (0.10,)}
"""The ``convnet-subj`` row (10 % only): the ``convnet`` row's recipe (denoised EEG, the denoised ridge as
skip path) with a subject embedding, so the row measures the embedding alone. Chosen on validation (the
90-120 s excerpt, 10 %, block, split and training seeds 0 / 1 / 2; raw ridge 0.309 / 0.312 / 0.309) over
the earlier recipe (raw EEG, the raw ridge as skip): 0.303 / 0.306 / 0.294 against 0.305 / 0.289 / 0.265
(mean 0.301 against 0.286). Both stay below raw ridge on that excerpt at every seed, and below the
``convnet`` row's own 0.319 (seed 0): the embedding does not help on this data."""

OUTPUT_RANKS = (2, 4, 8, 16)
"""Candidate ranks of the ensemble's output projection (:mod:`offline_training.output_projection`): the mix
projected on the leading principal directions of its own outputs on the training part, the rank (or none)
chosen on the split's validation part, inside the exported graph. The simulated response follows a few
stimulus features (low- and high-band envelopes, onsets: :mod:`replay.forward_model`), so the decodable
part of the 128-band mel spans few directions. Measured on saved predictions, each beside the unprojected
output, on three validation sets — the split's validation part (0-90 s), the 90-120 s excerpt and a second
one at 200-260 s (simulated for this, same listeners; the test excerpt is 120-180 s) — block, 10 %, the
ensemble of :data:`ENSEMBLE_DENOISED`: rank 4 0.295 / 0.387 / 0.368 and rank 8 0.295 / 0.387 / 0.366
against 0.293 / 0.385 / 0.363 unprojected (raw ridge 0.223 / 0.309 / 0.315); rank 1 0.264 / 0.392 / 0.362
and rank 2 0.291 / 0.387 / 0.367 (the training targets' leading direction lifted the convnet member alone
from 0.319 to 0.377 on the 90-120 s excerpt but dropped it from 0.223 to 0.179 on the validation part: not
a choice to make on one excerpt). Trained with it (the rank chosen inside ``train``): block rank 8, 0.387
(90-120 s) / 0.366 (200-260 s) against 0.385 / 0.363; subject: no rank chosen (its validation listeners
hear the training listeners' songs, where the memorising convnet scores 0.65: every projection looked worse
there), so unchanged. A gain of 0.5-1 %, kept because it is chosen on validation and costs a second of
training."""

ENSEMBLE_DENOISED = {
    **{k: v for k, v in SOURCENET.items() if k != "model_config"}, **DENOISED, "model": "ensemble",
    "reuse": ("linear-mcca", "sourcenet"),
    "extra": ({"name": "sourcenet", "config": {"feature_norm": "batch"}},) * 2,
    "model_config": {"output_ranks": OUTPUT_RANKS},
}
"""The ensemble row of :data:`FULL`: the split's denoised ridge and sourcenet (both on denoised EEG), and two
more sourcenet seeds trained inside the ensemble (sourcenet's recipe); the ridge's weight chosen on
validation, the others sharing the rest.

Chosen when the bench began scoring windows off the training grid (:data:`SCORING_PHASES_S`), on the
validation excerpt (90-120 s, 10 %, block) scored the same way: the skip convnet and the rcnn, members
until then, fit the music at the whole-second grid's fixed phase and lose it off the grid, and they pulled
the ensemble down with them. Off the grid, split and training seeds 0 / 1 / 2 (raw ridge 0.322 / 0.324 /
0.322): this ensemble 0.373 / 0.370 / 0.372; the one with the convnet and the rcnn 0.354 / 0.349 (seeds 0
/ 1; on the grid it had scored 0.390 / 0.390); the mean of the saved denoised ridge and sourcenet outputs
0.371 / 0.371, adding rcnn's 0.370 / 0.363, convnet-ema's 0.341 / 0.355 (mixes of saved outputs, seeds 0 /
1). Everything below was measured on the whole-second grid, with the convnet and the rcnn as members.

Validation (10 %, block / subject):
the first three 0.381 / 0.325; with one more sourcenet seed 0.385 / 0.347, with two 0.385 / 0.355, and
with the rcnn (:data:`RCNN`) as well 0.390 / 0.364 (kept); with one more sourcenet and one more convnet
0.381 / 0.339; without convnet 0.359 (block). Tried on
denoised EEG and not kept: sourcenet on training windows at a 0.5-s hop (0.355 / 0.321 against 0.342 /
0.336; in the ensemble with its extra seeds 0.361 / 0.361), convnet with up to 20 epochs (0.319 /
0.250 against 0.319 / 0.263), denoised ridge with lags every 2 samples (0.344 / 0.344 against 0.341 /
0.342) or up to 376 ms (0.340 / 0.342). Members from the raw input space, measured by mixing the model
files' outputs on the validation excerpt (ridge on raw EEG 0.309 / 0.320, this ensemble 0.385 / 0.356):
adding raw ridge, raw sourcenet, raw convnet or their mean at weight 0.1-0.4 gave at best 0.386 (block,
raw ridge at 0.1; 1.25× ridge, the 1.3× goal still missed) and 0.371 / 0.368 (subject, the three at 0.4 /
raw ridge alone at 0.4), so not kept: on block it adds nothing, and one ONNX file would have to carry each
listener's MCCA matrix for it. Members denoised with 4 MCCA components instead (a second input space; the
same mixing): at best 0.390 (block, 1.26×) / 0.368 (subject). Per-band mixing weights, even picked on the
very excerpt they were scored on (an upper bound), raised the pooled per-band r by 0.001-0.006 over one
weight per member. With its output projection (:data:`OUTPUT_RANKS`): 0.387 / 0.355.

Also measured on validation and not kept (10 %, 90-120 s excerpt unless said; ridge on raw EEG 0.309 block
/ 0.320 subject): augmentation (``shift=2,dropout=0.1,scale=0.2``) of sourcenet 0.344 (0.342 without), of
the skip convnet 0.313 (0.319), the ensemble with both and its extra seeds augmented 0.385; sourcenet with
the Pearson loss alone 0.344; the members' mixing weights in 0.1 steps for ridge, convnet and the
sourcenets (chosen on the validation part: 0.385; the best on the excerpt itself, an upper bound: 0.385);
greedy mixes with the 4-component and 0.5-s-hop members (0.390 at best); Gaussian smoothing of the outputs
over frames (σ 0.7 frame: 0.381, worse as σ grows); sourcenet variants on denoised EEG, on the 90-120 s /
200-260 s excerpts (the recipe 0.342 / 0.336; its three seeds in the ensemble 0.342-0.350 on the first): 4
sources 0.349 / 0.338, a 100-ms lead with 400-ms response filters 0.338 / 0.332, 64 features and a 128-wide
readout 0.340 / 0.334, all within the seeds' spread. The whole denoised recipe at a 0.25-s target offset
instead of the split's chosen 0.1 s scored convnet 0.410 and ensemble 0.419 on block (1.36× ridge) but
0.286 / 0.360 on the 200-260 s excerpt (0.273 / 0.363 at 0.1 s), 0.217 / 0.278 on the split's validation
part (0.223 / 0.293) and 0.269 / 0.335 on subject (0.263 / 0.355): an effect of that excerpt's music, not
kept (0.2 s: ensemble 0.390 block). Temporal context: ridge on denoised EEG reading each frame's lags from
the continuous recording around the window instead of the 1-s window alone (what a wider EEG window would
allow) 0.341 against 0.341 (lags 0-224 ms) and 0.339 against 0.340 (-64-288 ms): the window's edges cost
the ridge nothing, so no contract change was measured as worth making.

Measured later on the same validation data (the split's validation part / the 90-120 s excerpt; the ensemble
of three sourcenets, ridge and convnet without the rcnn 0.293 / 0.385, denoised ridge 0.265 / 0.341) and not
kept: nearest-neighbour retrieval of training mel windows by the ensemble's output (k 1-50, softmax weights)
alone 0.155-0.233 / 0.252-0.325, mixed into the output at best 0.293 / 0.384; per-listener ridge shrunk
toward the pooled one (denoised EEG: 0.265 / 0.341 at every shrinkage, raw EEG: lower); causal low-pass
filtering of the denoised EEG before ridge (10 Hz 0.266 / 0.340, 15 Hz 0.267 / 0.343; 1-10 Hz band-pass
0.237 / 0.323); deep members trained on targets projected onto the leading 8 principal directions of the
training mel (on the excerpt: convnet 0.330, sourcenet 0.339, ensemble 0.384; with 16 directions 0.287,
0.337, 0.372); ridge with quadratic features on the listeners' shared MCCA components (2 or 4 components:
0.284 / 0.312 on the excerpt, added to the mix at 0.1-0.4 ≤ 0.385). Where the ensemble's dynamic r is lost:
scored on each window's mean spectrum alone (prediction and target) it is 0.10 / 0.15, on the deviations
within windows 0.35 / 0.46, and the target's own window means put into its output (an oracle) would give
0.66 / 0.69. Each second's overall spectral level is what the simulated evoked response, driven by band
envelopes high-passed at 0.3 Hz, hardly carries: band powers of the shared components predict it at r
0.01-0.03, and rescaling the output's window-mean component (0-3×) or averaging it with the neighbouring
windows moved the ensemble by at most +0.004.

Measured after, on the grid, seed 0 (the convnet-and-rcnn ensemble 0.390, raw ridge 0.309) and not kept:
each frame's prediction averaged over windows shifted by 0, ±0.23 and ±0.46 s (ridge 0.309 → 0.307-0.309,
sourcenet 0.342 → 0.349, convnet 0.319 → 0.293, ensemble 0.390 → 0.381: what first showed the phase effect
of :data:`SCORING_PHASES_S`); training windows of every deep member mixed, with probability 0.5, with
another listener's window of the same second (weight uniform in [0, 1], the same target): convnet 0.310,
convnet-ema 0.331, sourcenet 0.340, rcnn 0.322 (−0.002 to −0.009), ensemble 0.390."""

NOISE_FREE = {"share": 0.99, "models": ("linear", "linear-mcca")}
"""The reference a row's ratio to ridge is read against: the ridge rows (``models``) trained, validated and
scored exactly as in the table, on EEG simulated from the same music and listeners with a 99 % evoked share
(the background all but gone). It is computed once per split and set beside every share's row as
"noise-free ridge / ridge": how far above the row's ridge a decoder gets that is as good as ridge with
almost no noise. Why it is in the table: at 10 % the 1.3× goal turned out to ask for more than that.

Measured first on the development excerpt (200-260 s, block, seed 0; 10 % ridge 0.326 and denoised ridge
0.357 there): on 99 %-evoked EEG ridge 0.389 and denoised ridge 0.416, and the networks trained on it barely
pass the linear decoder (``convnet-ema`` 0.421, ``sourcenet`` 0.395; a two-layer per-frame MLP on the lagged
principal components of the denoised EEG 0.376-0.396, ridge on the same features 0.418); ridge and denoised
ridge trained on 0-170 s of the 10 % EEG instead of 0-90 s, 0.334 and 0.364. What limits the decoders at
10 % is mostly what the simulated EEG carries of the mel spectrogram (16 band envelopes through four dipoles
and one response kernel, inside a 1-s window), not the noise or the amount of training data. It is a
reference, not a bound: in :data:`QUICK` (30-s excerpts, 4 listeners) the ensemble passes it on the subject
and song splits (1.23× and 1.65× ridge against 1.14× and 1.49×), where the noise-free ridge has little data
to learn from.

Tried on the same development excerpt at 10 % and not kept (ridge / denoised ridge 0.326 / 0.357 on block):
other ridge lags, 0-240 ms every 16 ms 0.327 / 0.360 and 0-352 ms every 32 ms 0.322 / 0.357 (the default is
0-224 ms every 32 ms); on the subject split (ridge 0.345, denoised ridge 0.359) each listener's MCCA
components put back on the scalp through one pattern common to every listener instead of its own, 0.362 (the
strongest component's pattern is already the same in every listener, cosine 0.98-0.99); and output windows
retrieved from the training excerpt's real spectrograms by their similarity to the denoised ridge's
prediction, 0.245-0.269 alone (k = 5-80 windows), 0.333-0.341 averaged with the prediction. One second of
EEG history before each window, so that the early frames' lags are not clipped (ridge on lagged principal
components): 0.3600 → 0.3601, as the clipped lags are the first 0-48 ms, before the response begins.
Tried there on 2026-12-05 (block; ridge / denoised ridge 0.3262 / 0.3571 in the same runs) and not kept:
against the listeners' different response kernels, MCCA over each listener's EEG stacked with time-shifted
copies of itself, so each listener's shared component is a spatio-temporal filter (shifts of -2..2 samples,
150 principal components: 0.3624; -4..4 every 2: 0.3615; 4 components instead of 2: 0.3527 / 0.3519);
against the background's colour, MCCA per band (below 4, 4-8, 8-13 and above 13 Hz, 2 components each),
summed back on the scalp 0.3569, or its 8 components given to ridge as separate inputs 0.3550; and a
per-band polynomial (degree 2 or 3) of the denoised ridge's output fitted on the validation excerpt,
0.3567 → 0.3568 (windows at the 0.5-s phase).

Is the spatial denoising what falls short? Measured there on 2026-12-05 against oracles that know what no
decoder can (block / subject; ridge 0.3262 / 0.345, denoised ridge 0.3571 / 0.359 in the same runs), each
listener's EEG projected by an oracle filter and back onto the scalp, then ridge as for ``linear-mcca``:
the minimum-variance (LCMV) filter of the listener's four true auditory dipoles (the simulator's positions
and orientations through its head model; covariance of its unlabelled early excerpt) 0.3494 / 0.3392; the
1, 2 or 4 filters of highest evoked-to-total variance, with the evoked covariance taken from the same
listener's 99 %-evoked simulation of the early excerpt (its evoked part, nearly) 0.3604 / 0.3547, 0.3551 /
0.3540 and 0.3452. Knowing the true sources gains +0.003 at most (one component, block; the recipe's MCCA
with one component gave +0.0035 on the validation excerpt, :data:`MCCA`): the MCCA denoising already reads
what a spatial filter can, and the 1.3× block goal there (0.424) lies 0.06 above the best of them."""

FULL = {
    "n_tracks": 4, "n_subjects": 6, "train_s": 90.0, "val_start_s": 90.0, "val_s": 30.0,
    "test_start_s": 120.0, "test_s": 60.0, "shares": (0.10, 0.03, 0.01),
    "splits": ("block", "subject", "song"),
    "models": {"linear": {}, "linear-ea": EUCLIDEAN, "linear-mcca": {"model": "linear", **DENOISED},
               "convnet": {**CONVNET, **DENOISED, **RANDOM_PHASE, **LATER_VALIDATION, "skip": "linear-mcca"},
               "convnet-ema": CONVNET_EMA, "convnet-subj": CONVNET_SUBJ,
               "sourcenet": {**SOURCENET, **DENOISED},
               "rcnn": {**RCNN, **DENOISED, **RANDOM_PHASE, **LATER_VALIDATION, "skip": "linear-mcca"},
               "ensemble": ENSEMBLE_DENOISED},
    "hop_s": 1.0, "mcca": MCCA, "noise_free": NOISE_FREE,
}
"""Full run: 4 tracks × 6 listeners, 90 s to train, the 60 s from 120 s on to test; the block,
subject and song splits (the goals' two and issue 14's third; one process per split with
:func:`run_config` ``splits``). Rows: ridge on raw EEG (the baseline), ridge on Euclidean-aligned
EEG, ridge on MCCA-denoised EEG, then on denoised EEG the skip convnet (its skip path the denoised
ridge), the same with its weights' moving average (``convnet-ema``, :data:`CONVNET_EMA`), sourcenet, rcnn
and the ensemble; ``convnet-subj`` (10 % only, :data:`CONVNET_SUBJ`) is that skip
convnet with a subject embedding (unseen listeners decoded as the mean trained listener).

Rerun on 2026-12-05 as ``eegmusic bench quality --jobs 2`` (42 min 41 s on 2 cores, 177-976 s a cell;
``docs/bench-quality.json``): every figure below to the printed digit but the rcnn on the subject split
(10 % 0.285, 3 % 0.253) and the shuffled-EEG controls, now drawn never to hand a window its own second
(block -0.006 to -0.005, subject -0.001 to 0.001, song -0.057 to -0.048: one held-out song gives the control
few independent seconds); and the song split at 3 % / 1 %, new: ridge 0.264 / 0.161, Euclidean-aligned
ridge 0.026 / 0.007 (below its shuffled control's 0.012 / 0.014), denoised ridge and the skip networks
0.334 / 0.277, sourcenet 0.343 / 0.294, ensemble 0.358 / 0.317 (1.36× / 1.96×, output rank 2 / 2).

Measured with this code (every choice on the 90-120 s validation excerpt, :data:`LATER_VALIDATION`; ridge's
penalty grid running on to 1000, :data:`offline_training.models.linear.RIDGE_GRID`; one process per evoked
share and split, one thread, two at a time, 313-864 s each; offset 0.1 s everywhere), dynamic r, block /
subject / song at 10 %: ridge 0.267 / 0.284 / 0.349, Euclidean-aligned ridge 0.170 / 0.122 / 0.050,
denoised ridge 0.295 / 0.304 / 0.376, convnet 0.295 / 0.304 / 0.376, convnet-ema 0.297 / 0.290 / 0.376,
convnet-subj 0.295 / 0.304 / 0.376, sourcenet 0.284 / 0.279 / 0.364, rcnn 0.295 / 0.286 / 0.376, ensemble
0.302 / 0.297 / 0.385 (output rank 4 / 4 / 2): best ÷ ridge 1.13× / 1.07× / 1.10×, every deep model above
ridge on block; 3 % block / subject: ridge 0.213 / 0.216, Euclidean-aligned ridge 0.076 / 0.091, denoised
ridge 0.259 / 0.259, convnet 0.259 / 0.259, convnet-ema 0.261 / 0.261, sourcenet 0.268 / 0.252, rcnn 0.259
/ 0.259, ensemble 0.277 / 0.268 (1.30× / 1.24×); 1 %: ridge 0.142 / 0.138, Euclidean-aligned ridge 0.038 /
0.052, denoised ridge 0.208 / 0.201, convnet 0.208 / 0.201, convnet-ema 0.218 / 0.213, sourcenet 0.233 /
0.212, rcnn 0.220 / 0.201, ensemble 0.238 / 0.223 (1.67× / 1.62×). Shuffled EEG ≤ 0.017 in absolute value,
global mean −0.001 to 0.017, song mean −0.010. A network row equal to the denoised ridge to the digit kept
its start: no epoch beat it on the validation excerpt. The :data:`NOISE_FREE` reference (50-93 s per split,
run separately on the same tracks): ridge / denoised ridge on 99 %-evoked EEG, block 0.330 / 0.363, subject
0.348 / 0.346, song 0.412 / 0.420, so noise-free ridge ÷ ridge 1.36× / 1.23× / 1.21× at 10 %, 1.70× /
1.61× at 3 %, 2.55× / 2.52× at 1 %. With the grid stopping at 10 (the run before, otherwise the same):
song ridge 0.340, denoised ridge and the skip networks 0.378, rcnn 0.371, ensemble 0.389 (1.14×);
subject convnet-ema 0.292, rcnn 0.291, ensemble 0.298 at 10 %, rcnn 0.253 at 3 %; Euclidean-aligned ridge
0.067 (song), 0.046 / 0.060 (1 %); noise-free subject 0.354 / 0.352; every other figure the same.

Measured before that, with every choice on the split's validation part: the rows below, except that a
skip network now scores its start (its skip path alone) on validation as epoch 0 and keeps an epoch only
if it beats it. Rerun of ``linear``,
``linear-mcca``, ``convnet``, ``convnet-ema`` and ``convnet-subj`` for every share and split (one
process each, one thread, two at a time; ``linear`` and ``linear-mcca`` equal to the last digit): 10 %
song convnet / convnet-ema / convnet-subj 0.378 / 0.378 / 0.378 (was 0.208 / 0.377 / 0.200; the skip
path alone), 10 % subject convnet-subj 0.308 (was 0.251); every other network cell unchanged.

Measured before that (the network rows with :data:`RANDOM_PHASE`; rerun with only ``linear``,
``linear-mcca`` and the four network rows, one process per evoked share and split, one thread, two at a time,
``linear`` and ``linear-mcca`` equal to the run below to the last digit; the other rows are the run below's),
scored off the training grid, dynamic r, block / subject / song at 10 %: convnet 0.252 / 0.244 / 0.208,
convnet-ema 0.270 / 0.271 / 0.377, convnet-subj 0.246 / 0.251 / 0.200, rcnn 0.254 / 0.245 / 0.215 (on the
grid 0.250 / 0.231 / 0.193, 0.271 / 0.272 / 0.382, 0.249 / 0.231 / 0.207, 0.255 / 0.236 / 0.217): on block
convnet-ema above ridge (0.267), the other three below it; 3 % block / subject: convnet 0.229 / 0.227,
convnet-ema 0.247 / 0.238, rcnn 0.240 / 0.228 (every deep model above ridge on block, 0.213); 1 %: convnet
0.183 / 0.180, convnet-ema 0.205 / 0.200, rcnn 0.218 / 0.217. Best ÷ ridge unchanged (the ensemble and
the denoised ridge remain the best rows): 1.14× / 1.07× / 1.15× at 10 %, 1.29× / 1.22× at 3 %, 1.65× /
1.61× at 1 %.

Measured before, with the network rows trained on whole-second windows, scored off the training grid
(:data:`SCORING_PHASES_S`; one process per evoked
share and split, nice'd, one thread, two or three at a time on 2 cores, 1 191-1 714 s each; offsets 0.1 s
block and song, 0.15 s subject), dynamic r, block / subject / song at 10 %: ridge 0.267 / 0.289 / 0.340,
Euclidean-aligned ridge 0.104 / 0.122 / 0.067, denoised ridge 0.295 / 0.308 / 0.378, convnet 0.201 / 0.193 /
0.106, convnet-ema 0.235 / 0.203 / 0.381, convnet-subj 0.203 / 0.186 / 0.109, sourcenet 0.280 / 0.279 /
0.364, rcnn 0.245 / 0.247 / 0.263, ensemble 0.305 / 0.291 / 0.390 (output rank 8 / 2 / 4): best ÷ ridge
1.14× block (goal 1.3× missed), 1.07× subject (denoised ridge; goal 1.2× missed), 1.15× song; convnet,
convnet-ema, convnet-subj and rcnn below ridge on block. 3 % block / subject: ridge 0.213 / 0.220, denoised
ridge 0.259 / 0.261, convnet 0.185 / 0.154, convnet-ema 0.212 / 0.167, sourcenet 0.260 / 0.256, rcnn 0.239
/ 0.225, ensemble 0.275 / 0.268 (1.29× / 1.22×); 1 %: ridge 0.142 / 0.141, denoised ridge 0.208 / 0.203,
convnet 0.163 / 0.115, convnet-ema 0.199 / 0.155, sourcenet 0.225 / 0.220, rcnn 0.214 / 0.207, ensemble
0.235 / 0.226 (1.65× / 1.61×, every deep model above ridge on block). Shuffled EEG ≤ 0.018 in absolute
value, global mean −0.002 to 0.017, song mean −0.011 / −0.010 / n/a. The ensemble with the convnet and the
rcnn as members, in the same run: 0.300 / 0.290 at 10 % block / subject, 0.277 at 3 % block.

Measured before, on the whole-second grid (one process per evoked share and split, nice'd, one thread, two
at a time at load about 2; 363 / 394 / 264 s at 10 % block / subject / song, 353 / 337 s at 3 %, 329 /
317 s at 1 %; offsets 0.1 s block and song, 0.15 s subject), dynamic r, block / subject / song: ridge
0.261 / 0.268 / 0.343,
Euclidean-aligned ridge 0.100 / 0.116 / 0.068, denoised ridge 0.288 / 0.286 / 0.383, convnet 0.279 / 0.284 /
0.107, convnet-ema 0.307 / 0.298 / 0.386, convnet-subj 0.277 / 0.277 / 0.124, sourcenet 0.280 / 0.280 /
0.369, rcnn 0.273 / 0.264 / 0.280, ensemble 0.330 / 0.334 / 0.385 (output rank 8 / none / 4): best ÷ ridge
1.26× block (goal 1.3× missed), 1.25× subject (goal 1.2× met), 1.13× song (convnet-ema; no goal; one
held-out song, 6 listeners, 6 blocks), every deep model above ridge on block; on song the skip convnet falls
to 0.107 and convnet-subj to 0.124 (they fit the two training songs; one song validates), while the weight
average keeps convnet-ema at 0.386. Shuffled EEG ≤ 0.019 in absolute value, global mean 0.046 / 0.051 /
0.014, song mean 0.055 / 0.061 / n/a. At 3 % and 1 % (the recipes as chosen at 10 %), block / subject: 3 %
ridge 0.210 / 0.205, denoised ridge 0.254 / 0.247, convnet 0.251 / 0.216, convnet-ema 0.268 / 0.241,
sourcenet 0.262 / 0.254, rcnn 0.263 / 0.243, ensemble 0.306 / 0.288 (rank 4 / none; 1.46× / 1.41×); 1 %
ridge 0.142 / 0.131, denoised ridge 0.207 / 0.196, convnet 0.218 / 0.156, convnet-ema 0.240 / 0.184,
sourcenet 0.229 / 0.223, rcnn 0.241 / 0.239, ensemble 0.269 / 0.247 (rank 2 / none; 1.90× / 1.89×). Every
other row reproduced the run before to the digit. The weight average of the rcnn (:data:`RCNN`, decay 0.99)
moved it, against the run before, 0.269 → 0.273 / 0.249 → 0.264 / 0.293 → 0.280 at 10 %, 0.235 → 0.263 /
0.225 → 0.243 at 3 %, 0.219 → 0.241 / 0.209 → 0.239 at 1 %, and the ensemble 0.331 → 0.330 / 0.332 → 0.334
/ 0.385 at 10 %, 0.299 → 0.306 / 0.287 → 0.288 at 3 %, 0.267 → 0.269 / 0.248 → 0.247 at 1 %. The run before
that (the recipes before :data:`CONVNET_SUBJ` and the rcnn's 128 units) scored convnet-subj 0.265 / 0.233
/ 0.234, rcnn 0.264 / 0.240 / 0.302 at 10 %, 0.245 / 0.233 at 3 %, 0.238 / 0.210 at 1 %, and the ensemble
0.330 / 0.333 / 0.385 at 10 %, 0.305 / 0.289 at 3 % and 0.269 / 0.246 at 1 %. The run before that (without
the rcnn member) scored the ensemble 0.327 / 0.331 / 0.384 at 10 %, 0.304 / 0.283 at 3 % and 0.263 / 0.234
at 1 %; without the output projection, 0.328 / 0.331 at 10 %, 0.303 / 0.283 at 3 %, 0.262 / 0.234 at 1 %.
How close 10 % is to a noise ceiling (the recipe before the rcnn member, block, read on the test excerpt as
a diagnostic): at a 50 % evoked share ridge 0.284 / ensemble 0.347 (1.22×), at 99 % 0.296 / 0.403 (1.36×;
convnet 0.385): the ratio is lowest between 10 % and 50 %, where ridge is already near its own ceiling.
Other seeds (10 %; the split's and every model's seed 1 / 2 instead of 0, the same recordings; read on the
test excerpt as a check, nothing chosen; with the rcnn's weight average): block ridge 0.260 / 0.262,
ensemble 0.329 / 0.326 (1.27× / 1.25×), rcnn 0.243 / 0.249, still below ridge (without the average 0.233 /
0.250), convnet 0.290 / 0.274, convnet-ema 0.314 / 0.328, sourcenet 0.289 / 0.287 and convnet-subj 0.275 /
0.286 above; subject (held-out S04 / S02) ridge 0.271 / 0.268, ensemble 0.342 / 0.328 (1.26× / 1.22×).
An earlier run's raw-EEG rows, before the deep recipes moved to denoised EEG (10 %, block / subject):
convnet 0.247 / 0.246, sourcenet 0.266 / 0.275, ensemble (ridge, sourcenet, convnet) 0.300 / 0.293; on
denoised EEG without the two extra sourcenet seeds, ensemble 0.328 / 0.324.

The previous round (deep recipes on raw EEG; one process per share, 1 879-2 203 s each at load
5-9.5), ridge / convnet / best and best ÷ ridge: 10 % block 0.261 / 0.247 / 0.300 (ensemble) 1.15×,
subject 0.268 / 0.246 / 0.293 1.10×; 3 % block 0.210 / 0.225 / 0.267 1.27×, subject 0.205 / 0.169 /
0.250 (sourcenet) 1.22×; 1 % block 0.142 / 0.157 / 0.205 (sourcenet) 1.45×, subject 0.131 / 0.101 /
0.200 1.53×. Earlier runs: the ratios depend on the target offset (10 %, block: ridge 0.234 /
ensemble 0.331, 1.42×, at 0.25 s; 0.249 / 0.303, 1.22×, at 0.15 s)."""

LONGER = {"train_s": 180.0, "val_start_s": 180.0, "test_start_s": 210.0}
"""A 180-s training excerpt, the 30 s after it to validate on and the test excerpt after that."""

SCALE = {
    "listeners12": {"n_subjects": 12},
    "seconds180": LONGER,
    "listeners12-seconds180": {"n_subjects": 12, **LONGER},
    "tracks8": {"n_tracks": 8},
    "tracks8-seconds180": {"n_tracks": 8, **LONGER},
}
"""More data with :data:`FULL`'s recipe unchanged: overrides of FULL, run at 10 % on the block split by
:func:`scale_config`. Added after measuring, as a measurement of which axis of data moves the ratio to
ridge, never to replace FULL's rows (the goals are judged there): the figures below were read on the test
excerpts, so no recipe or bench size is chosen by them. A longer training excerpt moves the test excerpt
to 210-270 s (every track of the first 8 lasts 270 s or more; the same 30-s gap as FULL's 90/120 s), and
the validation excerpt to the 30 s between them. The figures below were measured before the bench validated
on a later excerpt (:data:`LATER_VALIDATION`): every choice was then made on the split's validation part.

Measured with FULL as it was before its rcnn row and ensemble member (one process per row, nice'd, one
thread, load 1.2-4.5; this rerun of FULL reproduced its rows to the digit), ridge / denoised ridge / convnet
/ sourcenet / ensemble, ensemble ÷ ridge, the offset chosen on validation, wall time; shuffled EEG ≤ 0.012
(every model), global mean 0.033-0.051 and song mean 0.033-0.059 in every row. Where a row has more
listeners or tracks, "same recordings" scores its models on FULL's 6 listeners and 4 tracks only (the
simulator gives them the same EEG):

- FULL (4 tracks × 6 listeners × 90 s, test 120-180 s): 0.261 / 0.288 / 0.279 / 0.280 / 0.327, 1.26×,
  0.1 s, 468 s; the same models (same data, same seeds) scored on the 210-270 s excerpt instead: 0.314 /
  0.348 / 0.279 / 0.336 / 0.372, 1.19× (the test excerpt alone moves the ratio by 0.07);
- ``listeners12``: 0.249 / 0.271 / 0.257 / 0.287 / 0.318, 1.28×, 0.1 s, 1 027 s; same recordings 0.258 /
  0.278 / 0.268 / 0.288 / 0.322, 1.25×;
- ``seconds180``: 0.312 / 0.334 / 0.329 / 0.335 / 0.362, 1.16× (against 1.19× for FULL's models on that
  excerpt), 0.15 s, 729 s;
- ``listeners12-seconds180`` (4× FULL's windows): 0.307 / 0.332 / 0.295 / 0.335 / 0.373, 1.22×, 0.1 s,
  1 366 s; same recordings 0.315 / 0.340 / 0.308 / 0.335 / 0.376, 1.195× (against 1.187×);
- ``tracks8``: 0.285 / 0.307 / 0.328 / 0.318 / 0.380, 1.34×, 0.15 s, 1 216 s; same recordings 0.251 /
  0.268 / 0.308 / 0.284 / 0.341, 1.36× (against 1.26×);
- ``tracks8-seconds180``: 0.288 / 0.313 / 0.382 / 0.324 / 0.396, 1.38×, 0.25 s, 1 650 s; same recordings
  0.297 / 0.320 / 0.375 / 0.338 / 0.399, 1.34× (against 1.19×).

More listeners of the same songs, or longer excerpts of them, leave the ratio where it was or lower
(ridge gains nothing from either). The 8-track rows cross 1.3× because of the offset their validation
picks, not the data: two diagnostics with the offset forced (not a recipe: the recipe chooses it on
validation) — ``tracks8`` at FULL's 0.1 s: 0.294 / 0.318 / 0.298 / 0.313 / 0.366, 1.25×, same recordings
0.262 / 0.281 / 0.278 / 0.275 / 0.325, 1.24× (751 s); FULL at 0.15 s: 0.249 / 0.274 / 0.287 / 0.282 /
0.330, 1.32× (379 s). At a later offset ridge loses more than the deep models (0.261 → 0.249 while the
ensemble holds 0.327 → 0.330), so the ratio rises without any model decoding better; at a matched offset
8 tracks change the ensemble on FULL's recordings by -0.002 (0.1 s) or +0.011 (0.15 s). Within 4× FULL's
windows, no axis of data closes the block ratio to 1.3× with the recipe unchanged."""


def scale_config(name: str) -> dict:
    """:data:`FULL` with the :data:`SCALE` overrides ``name``, at 10 % on the block split.

    Examples
    --------
    >>> run_config(scale_config("tracks8"))   # doctest: +SKIP
    """
    return {**FULL, "shares": (0.10,), "splits": ("block",), **SCALE[name]}


QUICK = {
    "n_tracks": 4, "n_subjects": 4, "train_s": 30.0, "val_start_s": 30.0, "val_s": 15.0,
    "test_start_s": 45.0, "test_s": 15.0,
    "shares": (0.10,), "splits": ("block", "subject", "song"),
    "models": {"linear": {}, "linear-mcca": FULL["models"]["linear-mcca"],
               "sourcenet": {**FULL["models"]["sourcenet"], "epochs": 3},
               "ensemble": {**ENSEMBLE_DENOISED, "epochs": 3}},
    "hop_s": 1.0, "mcca": MCCA, "noise_free": NOISE_FREE,
}
"""Quick run: one evoked share, short excerpts; ridge, denoised ridge, sourcenet and the ensemble (a few
minutes)."""

TRAIN_OPTIONS = ("epochs", "patience", "loss", "augment", "model_config", "subject_conditioning", "lr", "ema",
                 "select_by", "epoch_fraction")
"""Entries of a model's recipe passed to :class:`offline_training.train.TrainConfig`."""

RIDGE = "linear"
GOALS = {"block_best_over_ridge": 1.3, "subject_best_over_ridge": 1.2}
SPLIT_GOALS = {"block": GOALS["block_best_over_ridge"], "subject": GOALS["subject_best_over_ridge"]}
"""The goal's ratio to ridge by split (the figures draw it)."""

HEADLINE = "ensemble"
"""The row the goals judge as "the best model" (a configuration may name another, ``"headline"``), named
before any test score: the project's best recipe, its members, mixing weights and output rank chosen on
validation. Until 2026-12-04 the table took the row with the highest *test* score, a choice made on test
data among nine rows; at 10 % on the subject split that was the denoised ridge (0.304) where the ensemble
scored 0.297, so the reported ratio was 1.07× where the decoder fixed in advance reached 1.05×."""

BLOCK_SEEDS = (0, 1, 2)
"""Seeds of the block split in the spread check (:func:`run_spread`): three draws of the held-out chunks."""

RUN_OPTIONS = ("seeds", "jobs")
"""Options ``eegmusic bench`` may pass to :func:`run` (``--seeds``, ``--jobs``)."""


def run(quick: bool, seeds: bool = False, jobs: int = 1) -> dict:
    """Run the benchmark.

    Parameters
    ----------
    quick : bool
        :data:`QUICK` instead of :data:`FULL`.
    seeds : bool
        Run the spread check instead (:func:`run_spread`: the block split at :data:`BLOCK_SEEDS`, the
        subject split once per held-out listener); its report is described there.
    jobs : int
        Processes for :func:`run_config`'s cells (one per evoked share and split, and one for the
        noise-free reference; for the spread check one per evoked share and split, with its seeds), each
        with ``cores // jobs`` threads. 1 runs them one after another in this process.

    Returns
    -------
    dict
        JSON-ready: ``config``, ``tracks`` (files, titles, licences), ``results[share][split]`` with
        ``target_offset_s``, ``models[name]`` (``dynamic_r``, ``shuffled_eeg``, ``over_ridge``, each the
        mean over :data:`SCORING_PHASES_S`; ``on_grid``, ``by_phase``, ``train_s``; an ensemble's
        ``output_rank``, None when unprojected), ``baselines``
        (``global_mean``, ``song_mean``) and test counts, ``goals`` and
        ``table`` (markdown).

    Raises
    ------
    DataFormatError
        The packaged music is not installed (the message names the apt-get command).
    """
    config = QUICK if quick else FULL
    return run_spread(config, jobs=jobs) if seeds else run_config(config, jobs=jobs)


def run_config(config: dict, *, jobs: int = 1) -> dict:
    """Run the benchmark with an explicit configuration (keys of :data:`FULL`); see :func:`run`.

    With ``jobs`` > 1 every (evoked share, split) cell, and the noise-free reference, runs in its own
    process (:func:`_config_cells`); each simulates its share's recordings itself, which are the same in
    every process (the simulator's seed is fixed), so the report is the serial one's up to the float
    rounding of the networks' training on another thread count.
    """
    from eegmusic.replay.music_sources import packaged_tracks

    _check_headline(config)
    _check_jobs(jobs)
    tracks = packaged_tracks(config["n_tracks"], min_seconds=config["test_start_s"] + config["test_s"])
    results: dict = {}
    with temporary_directory("eegmusic-quality-") as tmp:
        if jobs > 1:
            results, noise_free = _config_cells(config, tracks, Path(tmp), jobs)
        else:
            for share in config["shares"]:
                folders = _simulate(Path(tmp) / f"share{share:g}", tracks, share, config)
                runs = Path(tmp) / f"runs{share:g}"
                results[f"{share:g}"] = {split: _one_split(folders, split, config, runs, share)
                                         for split in config["splits"]}
            noise_free = _noise_free(Path(tmp), tracks, config)
    report = {
        **_report_header(config, tracks),
        "results": results,
        **({"noise_free": noise_free} if noise_free else {}),
        "goals": _goals(results, config, noise_free),
    }
    report["table"] = quality_table(report)
    return report


def _check_jobs(jobs: int) -> None:
    """Refuse a process count below 1 (the command line's ``--jobs`` already does)."""
    if jobs < 1:
        from eegmusic.stream.errors import ConfigError

        raise ConfigError(f"--jobs must be 1 or more (got {jobs}); e.g. --jobs 2 on 2 cores")


def _config_cells(config: dict, tracks, tmp: Path, jobs: int) -> tuple[dict, dict | None]:
    """:func:`run_config`'s cells in ``jobs`` processes: (results by share and split, the noise-free one)."""
    tasks = _cell_tasks(_run_cell, config, tracks, tmp, config["splits"])
    if config.get("noise_free"):
        tasks["noise_free"] = (_noise_free, (tmp / "noise-free", tracks, config), "the noise-free reference")
    done = _run_cells(tasks, jobs)
    return _by_share(done, config["shares"], config["splits"]), done.get("noise_free")


def _cell_tasks(function, config: dict, tracks, tmp: Path, splits, *extra) -> dict:
    """One :func:`_run_cells` task per (evoked share, split): ``function(config, tracks, folder, share,
    split, *extra)``, each in its own folder under ``tmp``."""
    cells = [(share, split) for share in config["shares"] for split in splits]
    return {(share, split): (function, (config, tracks, tmp / f"cell{k}", share, split, *extra),
                             f"{100 * share:g} % evoked, {split} split")
            for k, (share, split) in enumerate(cells)}


def _by_share(done: dict, shares, splits) -> dict:
    """:func:`_run_cells`' results keyed (share, split) as a report's ``{share: {split: entry}}``."""
    return {f"{share:g}": {split: done[(share, split)] for split in splits} for share in shares}


def _run_cells(tasks: dict, jobs: int) -> dict:
    """Run ``tasks`` (key → (function, args, label)) in ``jobs`` spawned processes: key → result.

    Each worker has ``cores // workers`` threads (torch, BLAS, onnxruntime) and logs at this process's
    level. The workers are spawned (no forked torch state) and write only under folders the caller
    removes. A cell's error is raised here; a worker that dies (killed for memory, a crash) is a
    RuntimeError naming the cell and the fix, never a wait for a result that cannot come. On an error or
    Ctrl-C the other workers are terminated, so nothing runs on after the bench has stopped. A progress
    bar counts the cells as they finish; the result keeps the keys' order, not the order they finished in.
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    from eegmusic.stream.progress import progress_bar

    workers = min(jobs, len(tasks))
    threads = max(1, len(os.sched_getaffinity(0)) // workers)
    level = logging.getLogger("eegmusic").getEffectiveLevel()
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_cell_worker, initargs=(threads, level))
    results: dict = {}
    finished = False
    try:
        with progress_bar(total=len(tasks), desc=f"quality cells, {workers} at a time", unit="cell") as bar:
            futures = {executor.submit(_timed, function, args): key
                       for key, (function, args, _) in tasks.items()}
            for future in as_completed(futures):  # in the order they finish
                key = futures[future]
                try:
                    results[key], seconds = future.result()  # a cell's error is raised here
                except BrokenProcessPool as error:
                    raise RuntimeError(f"a quality cell's process died ({tasks[key][2]}, or a cell beside "
                                       f"it): {error}; if it ran out of memory, rerun with fewer --jobs"
                                       ) from error
                logger.info("quality cell done: %s in %.0f s (%d left)", tasks[key][2], seconds,
                            len(tasks) - len(results))
                bar.update(1)
        executor.shutdown(wait=True)
        finished = True
    finally:
        if not finished:  # Python 3.11's executor cannot stop running workers itself
            processes = list((getattr(executor, "_processes", None) or {}).values())
            executor.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            for process in processes:
                process.join(10)
    return {key: results[key] for key in tasks}


def _cell_worker(threads: int, level: int) -> None:
    """A cell worker's start: ``threads`` threads for torch, BLAS and OpenMP (onnxruntime's scoring
    takes torch's count); eegmusic's log lines at the parent's ``level``.

    Ctrl-C reaches every process of the terminal's group: the workers ignore it (each would print its
    own traceback over the bench's last lines) and are terminated by the bench instead.
    """
    import signal

    import torch
    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    threadpool_limits(threads)   # numpy's BLAS (ridge, MCCA) would take every core in every worker
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("eegmusic").setLevel(level)


def _timed(function, args) -> tuple:
    """``function(*args)`` in a cell worker, and the seconds it took."""
    tic = time.perf_counter()
    return function(*args), time.perf_counter() - tic


def _run_cell(config: dict, tracks, folder: Path, share: float, split: str) -> dict:
    """One (evoked share, split) cell of :func:`run_config`, simulating its share's recordings itself."""
    folders = _simulate(folder / f"share{share:g}", tracks, share, config)
    return _one_split(folders, split, config, folder / "runs", share)


def run_spread(config: dict, *, block_seeds=BLOCK_SEEDS, jobs: int = 1) -> dict:
    """The table's block and subject rows over several seeds: their mean and spread beside the goals.

    One run of :func:`run_config` is one draw: on the subject split it holds out one listener. Here the
    block split runs once per seed of ``block_seeds`` (each draws other held-out chunks) and the subject
    split once per listener, at the first seeds that between them hold out every listener
    (:func:`subject_seeds`). A seed also seeds every model's training. Same recordings (simulated once per
    evoked share) and configuration; there is no noise-free reference, and nothing is chosen here: the
    scores are read on the test excerpt as a check of the spread.

    Measured with :data:`FULL` (these seeds; on the subject split seeds 0, 1, 3, 8, 14 and 16, holding out
    S02, S04, S01, S05, S06 and S03; each cell run as its own process, two at a time, 3.5-10 min; rerun on
    2026-12-05 as ``eegmusic bench quality --seeds --jobs 2``, 109 min, every figure below the same to its
    printed digit, ``docs/bench-spread.json``), mean
    dynamic r over the seeds, ridge → ensemble (the best row on the mean in every cell), with the ratio
    per seed or held-out listener:

    - 10 %: block 0.267 → 0.302, 1.13× (1.13 / 1.13 / 1.13); subject 0.262 → 0.289, 1.11× (1.05 / 1.13 /
      1.11 / 1.18 / 1.06 / 1.12).
    - 3 %: block 0.212 → 0.276, 1.297× (1.3005 / 1.2990 / 1.2924: at the goal's edge); subject 0.204 →
      0.263, 1.29× (1.24 / 1.28 / 1.31 / 1.45 / 1.19 / 1.31).
    - 1 %: block 0.140 → 0.238, 1.70× (1.67 / 1.73 / 1.69); subject 0.130 → 0.228, 1.75× (1.62 / 1.93 /
      1.87 / 2.10 / 1.47 / 1.65).

    Every deep row's mean is above ridge's; shuffled EEG stays within 0.019 of zero, the global mean
    within 0.002. Seed 2 on the subject split holds out S02 again, with other training seeds: the ensemble
    0.292 against seed 0's 0.297.

    Returns
    -------
    dict
        JSON-ready: ``config``, ``tracks``, ``spread[share][split]`` (:func:`spread_summary`), ``goals``
        (per share, on the mean: ``block_best_over_ridge``, ``block_best_goal_met``,
        ``block_seeds_meeting_goal``; the same with ``subject``) and ``table`` (markdown).
    """
    from eegmusic.replay.music_sources import packaged_tracks

    _check_headline(config)
    _check_jobs(jobs)
    tracks = packaged_tracks(config["n_tracks"], min_seconds=config["test_start_s"] + config["test_s"])
    splits = [split for split in ("block", "subject") if split in config["splits"]]
    if not splits:
        from eegmusic.stream.errors import ConfigError

        raise ConfigError(f"the spread check runs the block and subject splits; this configuration has "
                          f"{', '.join(config['splits'])}: add either")
    spread: dict = {}
    with temporary_directory("eegmusic-quality-") as tmp:
        if jobs > 1:  # one process per (share, split), each simulating its share and running every seed
            tasks = _cell_tasks(_spread_cell, config, tracks, Path(tmp), splits, tuple(block_seeds))
            spread = _by_share(_run_cells(tasks, jobs), config["shares"], splits)
        else:
            for share in config["shares"]:
                folders = _simulate(Path(tmp) / f"share{share:g}", tracks, share, config)
                spread[f"{share:g}"] = {split: _spread_split(folders, split, config, Path(tmp), share,
                                                             block_seeds) for split in splits}
    report = {
        **_report_header(config, tracks),
        "spread": spread,
        "goals": _spread_goals(spread),
    }
    report["table"] = spread_table(report)
    return report


def _spread_split(folders: dict, split: str, config: dict, tmp: Path, share: float, block_seeds) -> dict:
    """One split of :func:`run_spread` at one share: every seed run, then :func:`spread_summary`."""
    seeds = list(block_seeds) if split == "block" else subject_seeds(folders["train"], hop_s=config["hop_s"])
    runs = {}
    for k, seed in enumerate(seeds, 1):
        logger.info("spread: %g %% evoked, %s split, seed %d (%d of %d)", 100 * share, split, seed, k,
                    len(seeds))
        runs[seed] = _one_split(folders, split, config, tmp / f"runs{share:g}-seed{seed}", share, seed=seed)
    return spread_summary(runs, split, config)


def _spread_cell(config: dict, tracks, folder: Path, share: float, split: str, block_seeds) -> dict:
    """:func:`_spread_split` in a cell worker, simulating its share's recordings itself."""
    folders = _simulate(folder / f"share{share:g}", tracks, share, config)
    return _spread_split(folders, split, config, folder, share, block_seeds)


def subject_seeds(folder, *, hop_s: float = 1.0, max_seed: int = 1000) -> list[int]:
    """The first seeds whose subject splits, between them, hold out every listener of ``folder``.

    A seed joins only if its test part holds out a listener no earlier seed did, so with one test
    listener per draw the list holds each listener out once (leave one listener out).
    """
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.splits import make_split

    dataset = WindowDataset(folder, hop_s=hop_s)
    left = set(range(len(dataset.subjects)))
    seeds = []
    for seed in range(max_seed):
        parts = make_split(dataset.index, "subject", seed=seed, hop_s=hop_s, music=dataset.music)
        held_out = {int(k) for k in dataset.index["subject"][parts.test]}
        if held_out & left:
            seeds.append(seed)
            left -= held_out
        if not left:
            return seeds
    raise RuntimeError(f"{max_seed} subject splits left {len(left)} listeners never held out")


def spread_summary(runs: dict, split: str, config: dict) -> dict:
    """Mean and spread of one split's runs (seed -> :func:`_one_split`'s entry).

    Returns
    -------
    dict
        ``seeds`` (per seed: ``held_out``, the subject split's test listeners, empty on the other
        splits; each row's ``dynamic_r`` and ``shuffled_eeg``; ``best_over_ridge``, the :func:`headline`
        row's ratio; the run's ``baselines``), ``mean`` (each row's mean dynamic r), ``best`` (the
        :func:`headline` row, named in advance: never the row with the highest test mean),
        ``best_over_ridge`` (its mean over ridge's),
        ``every_deep_mean_beats_ridge`` (the rows that train a model other than ridge, as in the table's
        goals), ``shuffled_eeg_max_abs`` (the largest absolute shuffled-EEG score of any row and run) and
        ``baselines`` (the global-mean and song-mean scores, mean over the runs).
    """
    first = next(iter(runs.values()))
    names = [n for n in first["models"] if all(n in r["models"] for r in runs.values())]
    mean = {n: float(np.mean([r["models"][n]["dynamic_r"] for r in runs.values()])) for n in names}
    best = headline(config) if headline(config) in names else None
    deep = [n for n in names if _is_deep(n, config)]
    seeds = {}
    for seed, entry in runs.items():
        scores = {n: entry["models"][n]["dynamic_r"] for n in names}
        seeds[str(seed)] = {"held_out": list(entry["test_subjects"]) if split == "subject" else [],
                            "dynamic_r": scores,
                            "best_over_ridge": _ratio(scores.get(best), scores.get(RIDGE)),
                            "shuffled_eeg": {n: entry["models"][n]["shuffled_eeg"] for n in names},
                            "baselines": dict(entry["baselines"])}
    return {
        "seeds": seeds, "mean": mean, "best": best,
        "best_over_ridge": _ratio(mean.get(best), mean.get(RIDGE)),
        "every_deep_mean_beats_ridge": (RIDGE in mean and bool(deep)
                                        and all(mean[n] > mean[RIDGE] for n in deep)),
        "shuffled_eeg_max_abs": max(abs(m["shuffled_eeg"]) for r in runs.values()
                                    for m in r["models"].values()),
        "baselines": {key: float(np.mean([r["baselines"][key] for r in runs.values()]))
                      for key in first["baselines"]},
    }


def _spread_goals(spread: dict) -> dict:
    """The goals per evoked share on the spread's means, with how many seeds meet them on their own."""
    goals = {}
    for share, by_split in spread.items():
        entry = {}
        for split, goal_key, met_key in (("block", "block_best_over_ridge", "block_best_goal_met"),
                                         ("subject", "subject_best_over_ridge", "subject_goal_met")):
            summary = by_split.get(split)
            if not summary:
                continue
            goal = GOALS[goal_key]
            ratio = summary["best_over_ridge"]
            per_seed = [s["best_over_ridge"] for s in summary["seeds"].values()]
            entry[goal_key] = ratio
            entry[met_key] = ratio is not None and ratio >= goal
            entry[f"{split}_seeds_meeting_goal"] = sum(r is not None and r >= goal for r in per_seed)
            entry[f"{split}_seeds"] = len(per_seed)
        goals[share] = entry
    return goals


def spread_table(report: dict) -> str:
    """Markdown: per evoked share and split, the rows' means over the seeds and the headline row's spread."""
    names = list(report["config"]["models"])
    row = headline(report["config"])
    lines = ["| evoked share | split | seeds (held-out listener) | " + " | ".join(names)
             + f" | `{row}` / ridge | per seed | shuffled EEG (largest absolute) | global mean"
             + " | song mean |", "|" + "---|" * (len(names) + 8)]
    for share, by_split in report["spread"].items():
        for split, summary in by_split.items():
            seeds = ", ".join(f"{seed} ({'/'.join(s['held_out'])})" if s["held_out"] else seed
                              for seed, s in summary["seeds"].items())
            per_seed = ", ".join("n/a" if s["best_over_ridge"] is None else f"{s['best_over_ridge']:.3f}"
                                 for s in summary["seeds"].values())
            ratio = summary["best_over_ridge"]
            lines.append(
                f"| {float(share):.0%} | {split} | {seeds} | "
                + " | ".join(f"{summary['mean'][n]:.3f}" if n in summary["mean"] else "–" for n in names)
                + f" | {'n/a' if ratio is None else f'{ratio:.3f}×'} | {per_seed}"
                + f" | {summary['shuffled_eeg_max_abs']:.3f} | {summary['baselines']['global_mean']:.3f}"
                + f" | {summary['baselines']['song_mean']:.3f} |")
    return "\n".join(lines) + "\n"


def _report_header(config: dict, tracks) -> dict:
    """The ``config`` (JSON-ready) and ``tracks`` (files, titles, licences) entries of a report."""
    from eegmusic.replay.music_sources import describe

    return {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()},
            "tracks": [{"file": str(p), **({"title": t.title, "author": t.author, "licence": t.licence}
                                            if (t := describe(p)) else {})} for p in tracks]}


def _noise_free(tmp: Path, tracks, config) -> dict | None:
    """:data:`NOISE_FREE`'s ridge rows on nearly noise-free EEG, per split (None: the config has none)."""
    reference = config.get("noise_free")
    if not reference:
        return None
    rows = {name: config["models"][name] for name in reference["models"] if name in config["models"]}
    config = {**config, "models": rows}
    folders = _simulate(tmp / "noise-free", tracks, reference["share"], config)
    results = {split: _one_split(folders, split, config, tmp / "runs-noise-free", reference["share"])
               for split in config["splits"]}
    return {"share": reference["share"], "results": results}


def _noise_free_best(noise_free: dict | None, split: str) -> float | None:
    """The best dynamic r of the noise-free reference on a split (None where there is none)."""
    entry = (noise_free or {}).get("results", {}).get(split)
    return max(m["dynamic_r"] for m in entry["models"].values()) if entry else None


def _simulate(folder: Path, tracks, share: float, config) -> dict:
    """Simulate the training excerpt and the later test excerpt of every track (same listeners)."""
    from eegmusic.offline_training.alignment import align_folder
    from eegmusic.replay.simulate import simulate

    excerpts = {"train": (0.0, config["train_s"]), "test": (config["test_start_s"], config["test_s"])}
    if config.get("val_start_s") is not None:  # validation on a later excerpt (train --val-data)
        excerpts["val"] = (config["val_start_s"], config["val_s"])
    folders = {name: simulate(folder / name, n_subjects=config["n_subjects"], seconds=seconds, seed=0,
                              snr=share, audio_files=tracks, music_start_s=start_s, progress=False)
               for name, (start_s, seconds) in excerpts.items()}
    # a row's "align" names the per-listener EEG transform it trains and scores on: "ea", "mcca" or none
    for method in sorted({options.get("align") for options in config["models"].values()} - {None}):
        # each listener's matrix from its own early (training / calibration) excerpt, labels unread;
        # a held-out listener's (subject split) from its own unlabelled early excerpt
        matrices = listener_matrices(method, folders["train"], config)
        for name in excerpts:
            folders[f"{name}_{method}"] = align_folder(folders[name], folder / f"{name}-{method}", matrices)
    return folders


def _one_split(folders: dict, split: str, config, runs: Path, share: float | None = None, *,
               seed: int = 0) -> dict:
    """Choose the lag, train every model, score all on the later excerpt of the test part.

    ``seed`` draws the split's parts (the held-out chunks, or listener, or song) and seeds every
    model's training; the bench runs seed 0, other seeds are a check of the spread (:func:`run_spread`).
    """
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.scoring import INTERIOR_FRAMES
    from eegmusic.offline_training.splits import make_split
    from eegmusic.offline_training.target_lag import choose_target_offset
    from eegmusic.offline_training.train import TrainConfig, train, validate_on_excerpt

    hop_s = config["hop_s"]
    dataset = WindowDataset(folders["train"], hop_s=hop_s)
    parts = make_split(dataset.index, split, seed=seed, hop_s=hop_s, music=dataset.music)
    if "val" in folders:  # the lag is chosen on the validation every model uses
        dataset, parts = validate_on_excerpt(dataset, parts, folders["val"])
    # chosen by the criterion the bench scores: the interior frames of whole windows (live decoding
    # plays the newest columns instead, which is what `train`'s default chooses for)
    offset = choose_target_offset(dataset, parts, seed=seed, columns=INTERIOR_FRAMES).offset_s
    test_songs = sorted({int(s) for s in dataset.index["song"][parts.test]})
    test_subjects = sorted({dataset.subjects[int(k)] for k in dataset.index["subject"][parts.test]})
    # the listeners a subject embedding is trained for (the subject split's validation and test
    # listeners keep their untrained rows: they are decoded as the mean trained listener)
    train_subjects = sorted({dataset.subjects[int(k)] for k in dataset.index["subject"][parts.train]})
    if split == "block":
        test_songs, test_subjects = list(dataset.songs), list(dataset.subjects)
    del dataset
    # where the choices were made: the later validation excerpt's windows, or the split's own
    validation = {"source": "excerpt" if "val" in folders else "split", "n_windows": int(len(parts.val))}
    out: dict = {"target_offset_s": offset, "validation": validation, "test_songs": test_songs,
                 "test_subjects": test_subjects, "models": {}}
    for name, options in config["models"].items():
        if split not in options.get("splits", (split,)) or share not in options.get("shares", (share,)):
            continue
        tic = time.perf_counter()
        run_dir = runs / f"{split}-{name}"
        recipe = {"epochs": 1, "patience": 3, **{k: v for k, v in options.items() if k in TRAIN_OPTIONS}}
        recipe["model_config"] = dict(recipe.get("model_config", {}))
        if options.get("model", name) == "ensemble":
            recipe["model_config"]["members"] = (
                [{"name": _registry_name(config, r), "checkpoint": str(runs / f"{split}-{r}" / "best.pt")}
                 for r in options["reuse"] if (runs / f"{split}-{r}" / "best.pt").is_file()]
                + [dict(m) for m in options.get("extra", ())])
        if options.get("skip"):
            skip = options["skip"]
            recipe["model_config"]["skip"] = {"name": _registry_name(config, skip),
                                              "checkpoint": str(runs / f"{split}-{skip}" / "best.pt")}
        aligned = f"_{options['align']}" if options.get("align") else ""
        val_data = str(folders["val" + aligned]) if "val" in folders else None
        fit = train(TrainConfig(data=str(folders["train" + aligned]), model=options.get("model", name),
                                split=split, out=str(run_dir), hop_s=options.get("hop_s", hop_s),
                                target_offset_s=offset, progress=False, seed=seed, val_data=val_data,
                                **recipe))
        scores = score_on_excerpt(run_dir / "model.onnx", folders["test" + aligned], songs=test_songs,
                                  subjects=test_subjects, trained_subjects=train_subjects)
        out["models"][name] = {"dynamic_r": scores["model"], "shuffled_eeg": scores["shuffled_eeg"],
                               "on_grid": scores["on_grid"], "by_phase": scores["by_phase"],
                               "subject_input": scores["subject_input"],
                               "train_s": round(time.perf_counter() - tic, 1)}
        if "output_rank" in fit:  # an ensemble's output projection: the rank chosen on validation
            out["models"][name]["output_rank"] = fit["output_rank"]
        out["baselines"] = {"global_mean": scores["global_mean"], "song_mean": scores["song_mean"]}
        out["n_test_windows"], out["n_test_blocks"] = scores["n_windows"], scores["n_blocks"]
        logger.info("%s split, %s: dynamic r %.3f (shuffled %.3f; %.3f on the whole-second grid)", split,
                    name, scores["model"], scores["shuffled_eeg"], scores["on_grid"])
    for entry in out["models"].values():
        entry["over_ridge"] = _over(entry["dynamic_r"], out)
    return out


def listener_matrices(method: str, folder, config: dict) -> dict:
    """Per-listener matrices of an alignment method, from the listeners' early (unlabelled) EEG.

    Parameters
    ----------
    method : str
        ``ea`` (:func:`offline_training.alignment.listener_matrices`) or ``mcca``
        (:func:`offline_training.mcca.listener_denoisers`, with ``config["mcca"]`` keyword arguments).
    folder : Path
        The early-excerpt folder.
    config : dict
        The bench configuration.

    Returns
    -------
    dict
        Participant id → (n_chans, n_chans) matrix.
    """
    if method == "ea":
        from eegmusic.offline_training import alignment

        return alignment.listener_matrices(folder, **config.get("ea", {}))
    if method == "mcca":
        from eegmusic.offline_training.mcca import listener_denoisers

        return listener_denoisers(folder, **config.get("mcca", {}))
    raise ValueError(f"unknown alignment {method!r}")


def _registry_name(config: dict, row: str) -> str:
    """The registry model a row of ``config["models"]`` trains (its ``model`` entry, else its name)."""
    return config["models"].get(row, {}).get("model", row)


SCORING_PHASES_S = (0.1, 0.3, 0.5, 0.7, 0.9)
"""Where the scored 1-s windows start, in seconds past each whole second of the test excerpt; every score
is the mean over these phases. Training windows start on whole seconds (phase 0, or its multiples of a
shorter hop), and so did the scored windows until this round. On that shared grid a decoder can fit the
music's own structure at a fixed position in the window instead of reading the EEG: a beat whose period
divides one second falls on the same frames of every window, in training and in test. The song mean
*window* shows it (on the validation excerpt, 90-120 s, 10 %, block, seed 0: dynamic r 0.066 on the grid,
-0.002 to 0.004 at these phases), and so do the deep rows, measured on the same excerpt with this bench's
recipes (on the grid → mean over these phases): the skip convnet 0.319 → 0.222, convnet-ema 0.337 →
0.251, rcnn 0.324 → 0.279, the ensemble with them 0.390 → 0.354, while ridge (0.309 → 0.322), denoised ridge
(0.341 → 0.356) and sourcenet (0.342 → 0.348), whose outputs follow the EEG through filters shifted along the
window, do not lean on it
(seed 1: convnet 0.306 → 0.203, ensemble 0.390 → 0.349, ridge 0.312 → 0.324). A convnet trained on windows
at a 0.2-s hop (every fifth of a second a phase) scored 0.359 on the grid and 0.265-0.287 at these phases
(seed 0): less locked, still below ridge. Live decoding has no fixed phase, so these odd tenths of a
second (none a multiple of a 0.2-s or 1-s training hop) are what the bench reports; ``on_grid`` keeps the
whole-second score beside them."""


def score_on_excerpt(model_path, folder, *, songs, subjects, trained_subjects=None, seed: int = 0,
                     phases_s=SCORING_PHASES_S) -> dict:
    """Dynamic r of a model file on 1-s windows of the given songs and listeners of a folder.

    Each score is the mean over the window phases ``phases_s`` (:data:`SCORING_PHASES_S`): windows start
    at ``phase + k`` seconds. A model with a ``subject`` input gets each window's listener code; a
    listener the model was not trained on (the subject split's test listeners) is decoded by the mean of
    the model's outputs over every listener it knows — for a model whose output is linear in the subject
    embedding (``convnet``: the embedding joins its linear output layer) that is the output at the mean
    embedding.

    Parameters
    ----------
    model_path : str or Path
        ONNX model written by ``train`` (with its ``baselines`` metadata).
    folder : str or Path
        The later-excerpt folder.
    songs : list of int
    subjects : list of str
        Participant ids.
    trained_subjects : list of str, optional
        The listeners the model was trained on (default: every listener its file names); any other
        is decoded as the mean of these.
    seed : int
        Seed of the EEG shuffle.
    phases_s : sequence of float
        Window phases in seconds, each in [0, 1); empty: whole seconds only (the grid training uses).

    Returns
    -------
    dict
        ``model``, ``shuffled_eeg``, ``global_mean``, ``song_mean`` (None when a test song is not in
        the model's training part), each the mean over the phases; ``on_grid`` (the model on windows
        starting on whole seconds), ``by_phase`` (the model per phase), ``n_windows`` and ``n_blocks``
        (per phase, at the first), ``subject_input`` (None for a model without one, else ``known`` or
        ``mean of N listeners``).
    """
    from eegmusic.offline_training.inference import load_model

    phases = tuple(float(p) for p in phases_s)
    if any(not 0.0 <= p < 1.0 for p in phases):
        raise ValueError(f"window phases {phases} must lie in [0, 1) s")
    import torch

    # as many threads as training had: all cores in one process, a cell worker's share under --jobs
    session, info = load_model(model_path, threads=torch.get_num_threads())
    on_grid = _score_phase(session, info, folder, 0.0, songs, subjects, trained_subjects, seed)
    scored = [_score_phase(session, info, folder, p, songs, subjects, trained_subjects, seed)
              for p in phases] or [on_grid]

    def mean(key):
        values = [entry[key] for entry in scored]
        return None if any(v is None for v in values) else float(np.mean(values))

    return {**{key: mean(key) for key in ("model", "shuffled_eeg", "global_mean", "song_mean")},
            "on_grid": on_grid["model"],
            "by_phase": {f"{p:g}": entry["model"] for p, entry in zip(phases, scored, strict=False)},
            **{key: scored[0][key] for key in ("n_windows", "n_blocks", "subject_input")}}


def _score_phase(session, info, folder, phase_s, songs, subjects, trained_subjects, seed) -> dict:
    """:func:`score_on_excerpt` on the windows starting at ``phase_s + k`` seconds."""
    from eegmusic.decoder.truth import read_baselines
    from eegmusic.offline_training import baselines, metrics
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.scoring import INTERIOR_FRAMES, concat_frames, dynamic_blocks
    from eegmusic.offline_training.splits import contiguous_blocks

    dataset = WindowDataset(folder, songs=songs, subjects=subjects, hop_s=1.0, phase_s=phase_s,
                            spec=info.preprocessing, target_offset_s=info.target_offset_s)
    rows = np.arange(len(dataset.index))
    blocks = dynamic_blocks(dataset.index, rows, contiguous_blocks(dataset.index, rows, hop_s=1.0))
    rows = np.concatenate(blocks)
    bounds = np.cumsum([0] + [len(b) for b in blocks])
    spans = list(zip(bounds[:-1], bounds[1:], strict=True))
    target = dataset.mel(rows)
    song_of_row = dataset.index["song"][rows]
    # never the EEG of another listener at the window's own second (the same target)
    order, why_not = baselines.shuffled_test_order(dataset.index, rows, seed=seed, music=dataset.music)
    if order is None:   # every score here stands beside this control: no run without it
        from eegmusic.stream.errors import ConfigError

        raise ConfigError(f"{folder}: {why_not}")
    global_mean, song_means = read_baselines(info.metadata["baselines"])
    subject_ids = np.array([dataset.subjects[int(k)] for k in dataset.index["subject"][rows]])
    predictions = {
        "model": run_listeners(session, info, dataset.eeg(rows), subject_ids, trained_subjects),
        "shuffled_eeg": run_listeners(session, info, dataset.eeg(rows[order]), subject_ids[order],
                                      trained_subjects),
        "global_mean": baselines.predict_global_mean(global_mean, len(rows)),
        "song_mean": baselines.predict_song_mean(song_means, song_of_row),
    }

    def dynamic(pred):
        if pred is None:
            return None
        return metrics.dynamic_r([concat_frames(pred[a:b][:, :, INTERIOR_FRAMES]) for a, b in spans],
                                 [concat_frames(target[a:b][:, :, INTERIOR_FRAMES]) for a, b in spans])

    scores = {name: dynamic(pred) for name, pred in predictions.items()}
    known = set(map(str, info.subjects if trained_subjects is None else trained_subjects))
    subject_input = None if not info.subject_input else (
        "known" if set(subject_ids) <= known else f"mean of {len(known)} listeners")
    return {**scores, "n_windows": int(len(rows)), "n_blocks": len(blocks), "subject_input": subject_input}


def run_listeners(session, info, eeg: np.ndarray, subject_ids: np.ndarray, trained=None) -> np.ndarray:
    """Mel-dB of a model file on EEG windows, each window fed its listener's code where it has one.

    Parameters
    ----------
    session, info
        :func:`offline_training.inference.load_model`.
    eeg : ndarray, shape (n_windows, n_chans, n_times), µV
    subject_ids : ndarray of str, shape (n_windows,)
        Each window's participant id.
    trained : sequence of str, optional
        The listeners whose codes the model was trained with (default: all its file names).

    Returns
    -------
    ndarray, shape (n_windows, 128, 44)
        For a model without a ``subject`` input, its output; with one, the output at each known
        listener's code, and for a listener the model does not know, the mean of the outputs at every
        code it knows.
    """
    from eegmusic.decoder.melspec import FRAMES_PER_WINDOW, N_MELS
    from eegmusic.offline_training.inference import run_model

    if not info.subject_input:
        return run_model(session, info, eeg)
    trained = set(map(str, info.subjects if trained is None else trained))
    codes = {str(s): k for k, s in enumerate(info.subjects) if str(s) in trained}
    known = np.array([str(s) in codes for s in subject_ids], dtype=bool)
    out = np.empty((len(eeg), N_MELS, FRAMES_PER_WINDOW), dtype=np.float32)
    if known.any():
        own = np.array([codes[str(s)] for s in subject_ids[known]], dtype=np.int64)
        out[known] = run_model(session, info, eeg[known], own)
    if not known.all():
        unseen = eeg[~known]
        mean = np.zeros((len(unseen), N_MELS, FRAMES_PER_WINDOW), dtype=np.float64)
        for code in codes.values():
            mean += run_model(session, info, unseen, np.full(len(unseen), code, dtype=np.int64))
        out[~known] = mean / len(codes)
    return out


def _goals(results: dict, config: dict | None = None, noise_free: dict | None = None) -> dict:
    """The issue's goals per evoked share: met or not, with the figures.

    "The best model" is the :func:`headline` row, named before any test score (never the row that
    scores highest on test); ``block_best_row`` / ``subject_best_row`` name it. "Every deep model beats
    ridge" counts the rows that train a model other than ``linear`` (a ridge on aligned EEG is no deep
    model). With a :data:`NOISE_FREE` reference, ``block_noise_free_over_ridge`` and
    ``subject_noise_free_over_ridge`` set the best ratio a decoder as good as ridge on noise-free EEG would
    reach beside each goal.
    """
    row = headline(config)
    goals = {}
    for share, by_split in results.items():
        entry = {}
        block = by_split.get("block")
        if block:
            deep = {n: m["over_ridge"] for n, m in block["models"].items() if _is_deep(n, config)}
            best = block["models"].get(row, {}).get("over_ridge")
            entry["block_best_row"] = row
            entry["block_best_over_ridge"] = best
            entry["block_best_goal_met"] = best is not None and best >= GOALS["block_best_over_ridge"]
            entry["block_every_deep_beats_ridge"] = bool(deep) and all(v is not None and v > 1.0
                                                                       for v in deep.values())
            entry["block_noise_free_over_ridge"] = _over(_noise_free_best(noise_free, "block"), block)
        subject = by_split.get("subject")
        if subject:
            best = subject["models"].get(row, {}).get("over_ridge")
            entry["subject_best_row"] = row
            entry["subject_best_over_ridge"] = best
            entry["subject_goal_met"] = best is not None and best >= GOALS["subject_best_over_ridge"]
            entry["subject_noise_free_over_ridge"] = _over(_noise_free_best(noise_free, "subject"), subject)
        goals[share] = entry
    return goals


def headline(config: dict | None) -> str:
    """The row a configuration's goals judge (:data:`HEADLINE` unless it names another)."""
    return (config or {}).get("headline", HEADLINE)


def _check_headline(config: dict) -> None:
    """Refuse a configuration that does not train the row its goals judge, before any run."""
    from eegmusic.stream.errors import ConfigError

    row = headline(config)
    if row not in config["models"]:
        raise ConfigError(f"the goals judge the row '{row}', which this configuration does not train; add "
                          f"it to \"models\" or name a trained row as \"headline\"")


def _is_deep(name: str, config: dict | None) -> bool:
    """Whether a row trains a model other than ridge (a ridge on aligned EEG is no deep model)."""
    return (_registry_name(config, name) if config else name) != RIDGE


def _ratio(value: float | None, ridge: float | None) -> float | None:
    """``value`` over ``ridge`` (None where either is missing or ridge ≤ 0)."""
    return None if value is None or not ridge or ridge <= 0 else value / ridge


def _over(value: float | None, entry: dict) -> float | None:
    """``value`` over the ridge row of a split's entry (None where either is missing or ridge ≤ 0)."""
    return _ratio(value, entry["models"].get(RIDGE, {}).get("dynamic_r"))


def quality_table(report: dict) -> str:
    """Markdown: one row per (evoked share, split), dynamic r of every model and baseline.

    The ratio columns and the shuffled-EEG control are the :func:`headline` row's, named in advance.
    """
    names = list(report["config"]["models"])
    row = headline(report["config"])
    reference = "noise_free" in report
    header = ("| evoked share | split | " + " | ".join(names)
              + f" | shuffled EEG (`{row}`) | global mean | song mean | `{row}` / ridge"
              + f" | on the whole-second grid: `{row}` / ridge"
              + (" | noise-free ridge / ridge |" if reference else " |"))
    lines = [header, "|" + "---|" * (len(names) + 7 + int(reference))]

    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    def ratio_text(value):
        return "n/a" if value is None else f"{value:.2f}×"

    for share, by_split in report["results"].items():
        for split, entry in by_split.items():
            models = entry["models"]
            chosen = models.get(row, {})
            grid = _ratio(chosen.get("on_grid"), models.get(RIDGE, {}).get("on_grid"))
            lines.append(
                f"| {float(share):.0%} | {split} | "
                + " | ".join(fmt(models[n]["dynamic_r"]) if n in models else "–" for n in names)
                + f" | {fmt(chosen.get('shuffled_eeg'))} | {fmt(entry['baselines']['global_mean'])}"
                + f" | {fmt(entry['baselines']['song_mean'])} | {ratio_text(chosen.get('over_ridge'))}"
                + f" | {ratio_text(grid)} |"
                + (f" {ratio_text(_over(_noise_free_best(report['noise_free'], split), entry))} |"
                   if reference else "")
            )
    return "\n".join(lines) + "\n"


def figure(report: dict, path) -> Path | None:
    """``eegmusic bench``'s figure hook: a single run's :func:`draw_quality`, the spread check's
    :func:`draw_spread`, written to ``path`` (None for a report that is neither)."""
    draw = draw_quality if "results" in report else draw_spread if "spread" in report else None
    return None if draw is None else _save_figure(draw(report), path)


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (the bench may run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path) -> Path:
    """Write a figure as PNG, atomically, and close it.

    Rendered in memory, then written by :func:`eegmusic.stream.atomic.write_bytes`: ``savefig`` straight
    onto ``path`` truncated the old figure to what a full disk let through (``docs/bench-quality.png``
    under ``readme_tables --figures docs``).

    Raises
    ------
    OutputError
        The file cannot be written (full disk, permissions); the old figure is left as it was.
    """
    import io

    from eegmusic.stream.atomic import write_bytes

    encoded = io.BytesIO()
    try:
        fig.savefig(encoded, format="png", dpi=100)
    finally:
        _pyplot().close(fig)
    write_bytes(path, encoded.getvalue())
    return Path(path)


def _data_caption(config: dict) -> str:
    """What a bench figure's scores were measured on, for its title: a title that named no data left a
    reader to guess which run (and how much music) the picture was from."""
    parts = [f"{config['n_tracks']} tracks" if "n_tracks" in config else "",
             f"{config['n_subjects']} simulated listeners" if "n_subjects" in config else "simulated EEG",
             f"{config['test_s']:g}-s unseen test excerpt" if "test_s" in config else ""]
    return "real music, " + ", ".join(part for part in parts if part)


def _spread_baselines(summary: dict) -> list[tuple[float | None, str, str, str]]:
    """The spread check's baselines on its ratio axis, as ``(ratio, colour, style, label)`` marks.

    Each baseline of the same seeds (the headline row on shuffled EEG, averaged over the seeds; the global
    mean; the song mean) over ridge's mean dynamic r, as the bar is the headline row's mean over it: a
    ratio drawn with nothing to read it against hid how far above chance the seeds sit.
    """
    row, ridge = summary.get("best"), summary["mean"].get(RIDGE)
    shuffled = [entry["shuffled_eeg"].get(row) for entry in summary["seeds"].values()
                if entry.get("shuffled_eeg", {}).get(row) is not None]
    baselines = summary.get("baselines", {})
    return _baseline_marks(row, _ratio(float(np.mean(shuffled)) if shuffled else None, ridge),
                           _ratio(baselines.get("global_mean"), ridge),
                           _ratio(baselines.get("song_mean"), ridge))


def _baseline_marks(row: str | None, shuffled: float | None, global_mean: float | None,
                    song_mean: float | None) -> list[tuple[float | None, str, str, str]]:
    """The three baselines as ``(value, colour, style, label)`` marks, styled alike on every figure."""
    return [(shuffled, "k", ":", f"shuffled EEG ({row})"),
            (global_mean, "saddlebrown", "-", "global mean"),
            (song_mean, "goldenrod", "-", "song mean")]


def _draw_marks(ax, marks, left: float, right: float) -> None:
    """Each mark with a value as a short horizontal line from ``left`` to ``right``, over the bars."""
    for value, colour, style, label in marks:
        if value is not None:
            ax.hlines(value, left, right, colors=colour, linestyles=style, linewidth=1.6, label=label,
                      zorder=3)


def draw_spread(report: dict):
    """The spread check (:func:`run_spread`) as a figure: the headline row's ratio to ridge per seed.

    One panel per split, one column of points per evoked share: each seed's (or held-out listener's)
    ratio, the ratio of the means as a bar, the baselines of the same seeds over ridge as short marks
    across the column, the goal as a red line and ridge itself (1×) as a black one: whether the goal holds
    for every draw, not only on the mean. The legend sits below the panels, where it hides no point.
    """
    plt = _pyplot()
    splits = [split for split in ("block", "subject") if any(split in s for s in report["spread"].values())]
    fig, axes = plt.subplots(1, len(splits), figsize=(4.5 * len(splits), 4.6), squeeze=False,
                             constrained_layout=True)
    for ax, split in zip(axes[0], splits, strict=True):
        shares = [share for share, by_split in report["spread"].items() if split in by_split]
        for g, share in enumerate(shares):
            summary = report["spread"][share][split]
            if summary["best_over_ridge"] is not None:
                ax.bar(g, summary["best_over_ridge"], 0.6, color=(0.05, 0.2, 0.55, 0.35),
                       label="mean over seeds")
            seeds = [(seed, entry) for seed, entry in summary["seeds"].items()
                     if entry["best_over_ridge"] is not None]
            # spread over the bar's width, names upright: slanted names of close points ran into each other
            offsets = np.linspace(-0.27, 0.27, len(seeds)) if len(seeds) > 1 else [0.0]
            for offset, (seed, entry) in zip(offsets, seeds, strict=True):
                ax.plot(g + offset, entry["best_over_ridge"], "o", color=(0.05, 0.2, 0.55), markersize=5,
                        label="one seed")
                name = ",".join(entry["held_out"]) or f"seed {seed}"
                ax.annotate(name, (g + offset, entry["best_over_ridge"]), textcoords="offset points",
                            xytext=(0, 4), ha="center", va="bottom", fontsize=6, rotation=90)
            _draw_marks(ax, _spread_baselines(summary), g - 0.32, g + 0.32)
        goal = SPLIT_GOALS[split]
        ax.axhline(goal, color="red", linewidth=1.6, label=f"goal ({goal:g}× ridge)")
        ax.axhline(1.0, color="k", linewidth=0.8, label="ridge")
        ax.axhline(0.0, color="k", linewidth=0.4, zorder=1.5)
        ax.margins(y=0.2)  # room above the highest point for its upright name
        ax.set_xticks(range(len(shares)), [f"{float(share):.0%} evoked" for share in shares])
        ax.set_title(f"{split} split: {headline(report['config'])} / ridge")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("dynamic r ratio to ridge, same run")
    _figure_legend(fig, axes[0], ncol=4)
    fig.suptitle(f"Spread check on {_data_caption(report['config'])}:\n"
                 "every seed and held-out listener, baselines over ridge from the same seeds", fontsize=10)
    return fig


def _figure_legend(fig, axes, *, ncol: int) -> None:
    """One legend below the panels naming each label once, wherever it first appears."""
    handles: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    labels = list(handles)
    fig.legend([handles[k] for k in labels], labels, loc="outside lower center",
               ncol=min(ncol, len(labels)), fontsize=8)


def draw_quality(report: dict):
    """A single-run report (:func:`run_config`) as bars: one panel per split, one group per share.

    Each group shows every model's dynamic r (ridge grey, the :func:`headline` row dark), with the
    baselines of the same run as short horizontal marks across the group (shuffled EEG of the headline
    row, global mean, song mean), the goal (the goal's ratio × ridge, red) and the noise-free reference
    (dashed) where the report has them: which rows clear the goal line, by how much the baselines sit
    below. Returns the matplotlib figure (:func:`figure` writes and closes it).
    """
    plt = _pyplot()

    names = list(report["config"]["models"])
    row = headline(report["config"])
    splits = list(dict.fromkeys(split for by_split in report["results"].values() for split in by_split))
    palette = [plt.get_cmap("tab20")(k) for k in (4, 5, 8, 9, 12, 13, 16, 17, 2, 3, 10, 11)]  # no greys
    others = [name for name in names if name not in (RIDGE, row)]
    colours = {name: palette[k % len(palette)] for k, name in enumerate(others)}
    colours[RIDGE], colours[row] = (0.55, 0.55, 0.55, 1.0), (0.05, 0.2, 0.55, 1.0)
    groups = [sum(split in by_split for by_split in report["results"].values()) for split in splits]
    fig, axes = plt.subplots(1, len(splits), figsize=(2.0 + 2.3 * sum(groups), 4.6), sharey=True,
                             squeeze=False, constrained_layout=True, gridspec_kw={"width_ratios": groups})
    width = 0.8 / len(names)
    for ax, split in zip(axes[0], splits, strict=True):
        shares = [s for s, by_split in report["results"].items() if split in by_split]
        for g, share in enumerate(shares):
            entry = report["results"][share][split]
            models = entry["models"]
            for k, name in enumerate(names):
                if name in models:  # each row named once in the legend, wherever it first appears
                    ax.bar(g - 0.4 + (k + 0.5) * width, models[name]["dynamic_r"], width,
                           color=colours[name], label=name)
            baselines = entry["baselines"]
            marks = _baseline_marks(row, models.get(row, {}).get("shuffled_eeg"),
                                    baselines.get("global_mean"), baselines.get("song_mean"))
            ridge = models.get(RIDGE, {}).get("dynamic_r")
            if split in SPLIT_GOALS and ridge:
                marks.append((SPLIT_GOALS[split] * ridge, "red", "-", "goal (× ridge)"))
            noise_free = _noise_free_best(report.get("noise_free"), split)
            if noise_free is not None:
                marks.append((noise_free, "k", "--", "noise-free ridge (reference)"))
            _draw_marks(ax, marks, g - 0.42, g + 0.42)
        ratios = [report["results"][s][split]["models"].get(row, {}).get("over_ridge") for s in shares]
        ax.set_xticks(range(len(shares)),
                      [f"{float(s):.0%} evoked" + ("" if r is None else f"\n{row} {r:.2f}× ridge")
                       for s, r in zip(shares, ratios, strict=True)])
        # under the baselines: drawn over them, it hid the global mean (−0.0002) on the block split
        ax.axhline(0.0, color="k", linewidth=0.6, zorder=1.5)
        # a split without a song-mean mark says why (its test songs are not in training), not a silent gap
        no_song_mean = all(report["results"][s][split]["baselines"].get("song_mean") is None for s in shares)
        unseen = "\n(no song mean: its test songs are unseen)" if no_song_mean else ""
        ax.set_title(f"{split} split{unseen}")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("dynamic r on the unseen excerpt")
    _figure_legend(fig, axes[0], ncol=7)
    fig.suptitle(f"Decoders on {_data_caption(report['config'])}: every baseline from the same run")
    return fig
