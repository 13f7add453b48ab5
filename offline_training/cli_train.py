"""``eegmusic train``: train a decoder on an NMED-T folder and export it to ONNX.

Light at import time (argparse only); the choices of ``--split`` and ``--loss`` come from
``splits.py`` and ``train.py`` (numpy only), the architectures listed in ``--help`` from the model
registry's table (no model module is imported), and torch and the data code are imported when the
command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from eegmusic.stream.cli import renamed_option
from eegmusic.stream.options import float_range, output_dir, positive_int, random_seed

EPILOG = """\
Examples:
  eegmusic train --data /tmp/sim --arch cnn --split block --out runs/cnn --epochs 20
  eegmusic train --data /tmp/sim --arch cnn --split block --out runs/cnn --epochs 40 --resume
  eegmusic train --data s.xdf --arch convnet --out runs/s   # target lag chosen on validation (the default)
  eegmusic train --data /tmp/sim --arch linear --split random --out runs/eeg2mel --target-offset 0
  eegmusic train --data /tmp/sim --arch sourcenet --arch-config '{"feature_norm": "batch"}' \\
      --loss mse+pearson --augment shift=1,dropout=0.1 --out runs/sn
  eegmusic train --data /tmp/sim --arch ensemble --out runs/ens   # ridge + two sourcenet seeds, mixed
  eegmusic train --data /tmp/sim --arch convnet --songs 21 22 --subjects 1 2 --out runs/small
  eegmusic train --data mydata --arch cnn --out runs/clip --allow-short-stimulus   # 30-s clips, longer EEG
  eegmusic train --data s.xdf --init pretrained/model.onnx --out runs/s-tuned   # adapt to a new listener
  eegmusic train --data /tmp/sim --arch convnet --out runs/checked --unseen-song-check  # a new song too
  eegmusic train --data /tmp/early --val-data /tmp/later --arch convnet --out runs/c   # validate later
  torchrun --nproc_per_node 2 -m eegmusic train --data /tmp/sim --arch convnet --out runs/ddp

--arch names an architecture of the model registry; --model, in every other command, is a model file.
{architectures}
splits: random (EEG2Mel protocol), block (held-out contiguous blocks, 1-s guard), subject,
subject-block (unseen listeners on seconds no training listener heard), song
--target-offset: by default 'auto' picks the lag (0-0.3 s) on the validation part, scoring the newest
window frames, the ones the live decoder plays (at offset 0 their brain response is not yet in the
window and live decoding scores near zero). Where the validation part has no 2-s stretch to score on
(--split random on little data, a session of a few seconds) the default trains at 0 s and warns; an
explicit --target-offset auto is refused there. With --init of a model that places its frames by the
offset (sourcenet), the default is the pretrained model's offset and another one is refused.
The run folder gets config.json, checkpoint.pt, best.pt, metrics.json, training_curve.png, model.onnx
(linear, fitted in closed form: no checkpoint.pt; ensemble: config.json, best.pt, metrics.json,
model.onnx and member<i>/ for each member trained in the run: its checkpoint.pt (last epoch), empty
for linear (fitted in closed form)).
"""


def _target_offset(text: str):
    """``--target-offset``: seconds, or ``auto`` (chosen on the validation part)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        offset = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither seconds nor 'auto'") from None
    if not -1.0 <= offset <= 2.0:  # NaN fails too; brain responses to sound lag by well under 1 s
        raise argparse.ArgumentTypeError(f"must be seconds in [-1, 2] or 'auto' (got {text!r})")
    return offset


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` options to ``parser``."""
    from eegmusic.offline_training.models.registry import architectures_help

    parser.epilog = EPILOG.replace("{architectures}", architectures_help())
    parser.add_argument("--data", required=True,
                        help="NMED-T folder, XDF calibration session (eegmusic calibrate), BIDS root, or an "
                        "EEG file MNE reads (.fif/.edf/.bdf/.vhdr/.set) with its audio sidecar")
    from eegmusic.offline_training.splits import SPLIT_KINDS
    from eegmusic.offline_training.train import LOSSES

    parser.add_argument("--arch", default=None, metavar="NAME",  # None: cnn, or the --init model's
                        help="architecture, a model registry name (default: cnn; with --init, the "
                        "pretrained model's, and another is refused; list below)")
    parser.add_argument("--split", default="block", choices=[k for k in SPLIT_KINDS if k != "all"],
                        help="how held-out windows are chosen (default: block; subject-block holds out "
                        "listeners on seconds of music no training listener heard, e.g. "
                        "--split subject-block)")
    parser.add_argument("--out", type=output_dir,
                        required=True, help="run folder to create (or to continue with --resume)")
    parser.add_argument("--epochs", type=positive_int, default=20, help="maximum epochs (default: 20)")
    parser.add_argument("--batch-size", type=positive_int, default=60, help="windows per batch (default: 60)")
    parser.add_argument("--lr", type=float_range(0.0, 10.0, low_open=True), default=None,
                        help="Adam learning rate (default: the model's own: cnn and transformer 1e-3, "
                        "sourcenet 3e-3, diffusion 2e-3, wavegan 5e-4, the others 1.5e-3)")
    parser.add_argument("--seed", type=random_seed,
                        default=0, help="seed of split, weights and batch order")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: auto")
    parser.add_argument("--loss", default="mse", choices=LOSSES,
                        help="loss on mel-dB (default: mse; pearson: 1 - per-band Pearson r; mse+pearson: "
                        "both, e.g. --loss mse+pearson)")
    parser.add_argument("--augment", default="", metavar="SPEC",
                        help="augment training windows: time shift (samples), channel dropout "
                        "(probability), amplitude scaling (SD of the log gain), e.g. "
                        "--augment shift=2,dropout=0.1,scale=0.2 (default: none)")
    parser.add_argument("--ema", type=float_range(0.0, 0.9999), default=0.0, metavar="DECAY",
                        help="keep a moving average of the weights over optimiser steps and validate and "
                        "keep it instead of the last step's weights, e.g. --ema 0.97 (default: 0, none)")
    parser.add_argument("--select-by", default="loss", choices=("loss", "dynamic_r"),
                        help="what picks the best epoch on the validation part: the training loss "
                        "(default) or dynamic r, each recording centred on its own means")
    parser.add_argument("--subject-conditioning", action="store_true",
                        help="add a subject embedding input (not with --init, nor with --split subject or "
                        "subject-block: their held-out listeners would have no trained embedding)")
    parser.add_argument("--init", default=None, metavar="MODEL",
                        help="fine-tune a pretrained run's model.onnx (with the best.pt train wrote beside "
                        "it; alone, only a convnet's: the exporter folds some weights of the others) or its "
                        "best.pt on --data (a new listener; another montage gets a learned channel adapter); "
                        "the normalisation (pretrained or refitted) is the one the pretrained model scores "
                        "higher with on the session; the learning rate, whether the output layer restarts "
                        "and the weight of the blend of the pretrained and the fine-tuned model's outputs "
                        "are chosen on two calibration tracks held out in turn (scores pooled), then the "
                        "chosen recipe is trained on every track (--lr fixes the rate); such a run cannot be "
                        "--resumed")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument(
        "--hop", type=float_range(0.008, 60.0), default=1.0,
        help="hop between training windows in s (default: 1)"
    )
    parser.add_argument(
        "--epoch-fraction", type=float_range(0.001, 1.0), default=1.0, metavar="SHARE",
        help="share of the training windows each epoch visits, drawn afresh per epoch; with a short hop "
        "the windows start at every phase of the second at a 1-s hop's cost, e.g. --hop 0.1 "
        "--epoch-fraction 0.1 (default: 1, all)"
    )
    parser.add_argument(
        "--patience", type=positive_int, default=5, help="early-stopping patience in epochs (default: 5)"
    )
    parser.add_argument(
        "--target-offset",
        type=_target_offset,
        default=None,  # not given: 'auto', falling back to 0 where nothing can be scored (run_train)
        metavar="SECONDS|auto",
        help="target offset in s: window ending at T decodes [T-1-offset, T-offset); 'auto' picks it "
        "(0-0.3 s) by a ridge's dynamic r on the validation part (default: auto, 0 with a warning "
        "where no lag can be scored), e.g. --target-offset 0.25",
    )
    parser.add_argument("--songs", type=positive_int, nargs="+", action="extend", default=None, metavar="ID",
                        help="song ids to use, e.g. 21 22 (default: all)")
    parser.add_argument("--subjects", type=positive_int, nargs="+", action="extend", default=None,
                        metavar="K",
                        help="listeners to use, 1-based numbers as in replay --subject (default: all)")
    parser.add_argument(
        "--arch-config",
        default=None,
        help="JSON object of model hyper-parameters, each of the type of the architecture's default; the "
        "model is built and run once on empty windows before training starts (not with --init), "
        "e.g. '{\"filters\": [4, 8, 8, 8, 8]}'",
    )
    parser.add_argument("--allow-short-stimulus", action="store_true",
                        help="train on a stimulus shorter than its EEG (targets after its end are silence); "
                        "refused otherwise")
    parser.add_argument("--unseen-song-check", action="store_true",
                        help="also train the model without one training song and score its newest window "
                        "frames on that song as live decoding plays it: how it decodes music it has not "
                        "heard, which a block split's validation part cannot tell (a second training), "
                        "e.g. --arch convnet --unseen-song-check")
    parser.add_argument("--val-data", default=None, metavar="DIR",
                        help="validate on a later excerpt of the same songs and listeners (e.g. eegmusic "
                        "simulate --music DIR --music-start 90) instead of the split's validation windows, "
                        "which are seconds of the training music: early stopping, the best epoch, ridge's "
                        "penalty, ensemble weights and an auto target offset are chosen on music never "
                        "trained on")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    renamed_option(parser, "--model", "is a model file in every command; name the architecture with --arch "
                   "(e.g. --arch linear)")
    renamed_option(parser, "--model-config", "is now --arch-config")


def _beside(metrics: dict) -> str:
    """The baselines' test MSE on the same windows, for the summary line ('' where none)."""
    mse = metrics.get("test_baselines_mse") or {}
    shown = [f"{name}-mean window {mse[key]:.2f}" for name, key in (("global", "global_mean"),
                                                                    ("song", "song_mean"))
             if mse.get(key) is not None]
    return f" (training part's {', '.join(shown)} on the same windows)" if shown else ""


def run_train(args: argparse.Namespace) -> int:
    """Run ``eegmusic train``; print a summary; return 0."""
    from eegmusic.stream.errors import ConfigError, read_json

    try:
        model_config = read_json(args.arch_config) if args.arch_config else {}
    except json.JSONDecodeError as error:
        from eegmusic.offline_training.train import config_example

        raise ConfigError(f"--arch-config is not valid JSON ({error.msg}); pass e.g. "
                          f"'{config_example(args.arch)}' for --arch {args.arch}") from error
    from eegmusic.offline_training.train import SUBJECT_SPLITS, TrainConfig, train
    from eegmusic.replay.manifest import excerpt_name

    if args.subject_conditioning and args.split in SUBJECT_SPLITS:
        # no model decodes a listener it never trained on otherwise than by that listener's untrained
        # intercept or embedding row: validation, evaluate and decode all would (bench_quality, which
        # decodes them as the mean trained listener, calls train itself)
        raise ConfigError(f"--subject-conditioning with --split {args.split}: the held-out listeners have no "
                          "trained subject parameters (their untrained intercept or embedding would decode "
                          "them); drop --subject-conditioning or use --split block")

    # not given: 'auto' (an offset of 0 leaves the newest window frames, the ones the live decoder
    # plays, without their brain response), but trained at 0 s with a warning on a split where no lag
    # can be scored, so that such runs keep working; an explicit 'auto' there is refused
    # (offline_training.target_lag says why)
    target_offset, fallback = ("auto", 0.0) if args.target_offset is None else (args.target_offset, None)
    config = TrainConfig(
        data=args.data,
        model=args.arch,
        split=args.split,
        out=args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        loss=args.loss,
        subject_conditioning=args.subject_conditioning,
        hop_s=args.hop,
        epoch_fraction=args.epoch_fraction,
        patience=args.patience,
        target_offset_s=target_offset,
        target_offset_fallback_s=fallback,
        songs=args.songs,
        subjects=args.subjects,
        model_config=model_config,
        progress=not args.no_progress,
        init=args.init,
        allow_short_stimulus=args.allow_short_stimulus,
        unseen_song_check=args.unseen_song_check,
        augment=args.augment,
        ema=args.ema,
        select_by=args.select_by,
        val_data=args.val_data,
    )
    try:
        metrics = train(config, resume=args.resume)
    except KeyboardInterrupt as interrupt:
        # main says only "interrupted"; a stop during the final writes says first what is left and how to
        # finish the run (train._finishing), so the user neither loses the earlier model nor guesses
        for note in getattr(interrupt, "__notes__", ()):
            print(f"eegmusic train: {note}", file=sys.stderr)
        raise
    if metrics.get("paths"):
        n = metrics["n_windows"]
        where = ""
        if config.val_data:
            where = f" ({excerpt_name(config.data, config.val_data)} {config.val_data})"
        # a closed-form fit has no epochs: it said "best epoch 0"; what validation chose there is a penalty,
        # and for an ensemble (its members' epochs are theirs) the members' mixing weights
        if "ridge" in metrics:
            chosen = f"ridge penalty {metrics['ridge']['alpha']:g}"
        elif "weights" in metrics:
            how = "chosen on validation" if metrics.get("weight_scores") else "equal: none to choose"
            chosen = f"member weights {', '.join(f'{w:.3g}' for w in metrics['weights'])} ({how})"
            if metrics.get("output_rank") is not None:
                chosen += f", output rank {metrics['output_rank']}"
        else:
            chosen = f"best epoch {metrics.get('best_epoch')}"
        print(
            f"{config.model} on {config.split} split: {n['train']} train / {n['val']} val{where} / "
            f"{n['test']} test windows, {chosen}, validation MSE "
            f"{metrics['val_mse']:.2f} dB², test MSE {metrics['test_mse']:.2f} dB²{_beside(metrics)}"
        )
        if metrics.get("test_targets_trained_on"):
            from eegmusic.offline_training.baselines import trained_music_note

            print(f"note: {trained_music_note(metrics['test_targets_trained_on'], n['test'], config.split)}")
        choice = metrics.get("target_offset_choice")
        if choice and not choice["validation_dynamic_r"]:
            print(f"target offset {choice['chosen_s']:g} s, not chosen ({choice['method']})")
        elif choice:
            tried = ", ".join(f"{k} s: {v:.3f}" for k, v in choice["validation_dynamic_r"].items())
            print(f"target offset {choice['chosen_s']:g} s, chosen on the validation part{where} "
                  f"(ridge dynamic r {tried})")
        tuned = metrics.get("finetune")
        if tuned:   # --init: what the held-out tracks chose, said only in INFO lines and metrics.json before
            print(_finetune_line(tuned, config.init))
        unseen = metrics.get("unseen_song")
        if unseen and unseen["dynamic_r"] is not None:
            lag = ("" if not unseen.get("offset_choice") else
                   f", at target offset {unseen['target_offset_s']:g} s chosen without it")
            control = unseen.get("shifted_dynamic_r")
            print(f"unseen-song check: trained without song {unseen['song']}, the model decodes it at live "
                  f"dynamic r {unseen['dynamic_r']:.3f} ({unseen['n_windows']} windows{lag}; "
                  f"shifted-stimulus control {'n/a' if control is None else f'{control:.3f}'}, the same "
                  "frames against the stimulus half their play away)")
        elif unseen:
            print(f"unseen-song check: not scored ({unseen['reason']})")
        print(f"model: {metrics['paths']['model.onnx']}")
    return 0


def _finetune_line(tuned: dict, init) -> str:
    """One line on what ``train --init`` chose on its held-out tracks (``metrics.json`` ``finetune``)."""
    alpha = float(tuned["alpha"])
    held = tuned["selection"]["songs"]
    where = (f"held-out track{'s' * (len(held) != 1)} {', '.join(map(str, held))}" if held
             else "validation blocks")
    chosen_r = tuned["alpha_r"].get(str(alpha))   # keyed str(weight), as finetune_fit writes it
    if alpha == 0:
        how = "the pretrained model kept as it is (no fine-tuning scored better)"
    else:
        head = {"keep": "kept", "reset": "reset"}.get(tuned["chosen_head"], tuned["chosen_head"])
        how = (f"lr {tuned['chosen_lr']:.2g}, output head {head}, blend weight {alpha:g} of the tuned "
               "weights" + (", refitted on every track" if tuned.get("refit") else ""))
    score = (f"; dynamic r {tuned['start_r']:.3f} at the start, {chosen_r:.3f} chosen"
             if chosen_r is not None and tuned.get("start_r") is not None else "")
    return f"fine-tuned from {init}: {how}, chosen on {where}{score}"
