"""The ``torchw2v`` command: ``train``, ``evaluate`` and ``compare``, with word2vec.c's flags.

Examples
--------
``torchw2v train -train corpus.txt.gz -output vectors.bin -cbow 0 -size 200 -binary 1``

``torchw2v evaluate vectors.bin --json``

``torchw2v compare corpus.txt.gz -cbow 0 -iter 2 --repeats 3 --json out.json --plot out.png``

Bad input (an unknown flag, a missing file, an output that cannot be written, an option not
built yet) ends the command with one line, ``torchw2v: error: ...``, and a non-zero status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

from gensim.models import KeyedVectors

from .compare import compare, figure_class, format_table, plot, usable_cores, write_json
from .distributed import SyncPolicy, is_writer, launched_by_torchrun, local_world_size
from .evaluation import check_files, evaluate, format_scores, to_json
from .export import load_word2vec_format, save_word2vec_format
from .synchronizer import PAIR_WORDS, RANK_WORDS, SYNC_MODES
from .word2vec import Word2Vec

PROG = "torchw2v"
# Errors that mean bad input or an option not built yet: reported in one line. Others
# (bugs) keep their traceback. UnicodeDecodeError and FileNotFoundError are among these.
INPUT_ERRORS = (OSError, ValueError, EOFError, ImportError, NotImplementedError, FloatingPointError)
USAGE_STATUS, ERROR_STATUS, INTERRUPTED_STATUS = 2, 1, 130

logger = logging.getLogger(__name__)


class UsageError(Exception):
    """The command line does not parse; reported in one line."""


class Parser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of printing its usage."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def main(argv: list[str] | None = None) -> int:
    """Run the ``torchw2v`` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 2 for a command line that does not parse, 1 for other
        bad input (each reported in one line on stderr), 130 when interrupted.
    """
    try:
        args = build_parser().parse_args(argv)
        _configure_logging()
        args.run(args)
    except SystemExit as done:  # --help
        return done.code or 0
    except UsageError as err:
        return _fail(err, USAGE_STATUS)
    except INPUT_ERRORS as err:
        return _fail(err, ERROR_STATUS)
    except KeyboardInterrupt:
        return _fail("interrupted", INTERRUPTED_STATUS)
    return 0


def _fail(error: Exception | str, status: int) -> int:
    """Print ``torchw2v: error: ...`` as one line on stderr; return ``status``."""
    message = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, OSError) and error.filename and error.strerror:
        message = f"{error.filename}: {error.strerror}"  # not "[Errno 2] ...: 'name'"
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def _configure_logging() -> None:
    """Progress and summaries at INFO on stderr, gensim-style; not evaluation's per-line notes."""
    level = logging.INFO if is_writer() else logging.WARNING  # under torchrun: rank 0's log
    logging.basicConfig(format="%(asctime)s : %(levelname)s : %(message)s", level=level)
    logging.getLogger("gensim.models.keyedvectors").setLevel(logging.WARNING)


COMMANDS = {  # name: (summary, description)
    "train": (
        "train word vectors and write them in word2vec format",
        "Train word vectors on a corpus (one sentence per line, tokens separated by "
        "whitespace; plain, .gz or .bz2) and write them in word2vec's text or binary format. "
        "Flags and defaults are word2vec.c's; each also has a --long form.",
    ),
    "evaluate": (
        "score word2vec-format vectors on analogies and word similarity",
        "Score word2vec-format vectors (text or binary, detected) with gensim's "
        "evaluate_word_analogies (30,000 most frequent words) and evaluate_word_pairs. "
        "Defaults: gensim's questions-words.txt, wordsim353.tsv and simlex999.txt.",
    ),
    "compare": (
        "train gensim and torchw2v with the same settings and compare them",
        "Train gensim's Word2Vec and torchw2v's on CORPUS with identical settings and "
        "threads; print training time, words/s, the speed ratio, analogy, WS353 and "
        "SimLex-999 scores and the overlap of the 10 nearest neighbours of frequent words, "
        "with mean and spread over repeats (seeds -seed, -seed + 1, ...).",
    ),
}


def build_parser() -> Parser:
    """The parser of all subcommands; each sets ``run`` to the function that carries it out."""
    parser = Parser(
        prog=PROG,
        description="Train word2vec embeddings with word2vec.c's flags, score them, and "
        "compare torchw2v with gensim.",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    train = _command(commands, "train", _train)
    train.add_argument("-train", "--train", required=True, metavar="CORPUS", help="the corpus")
    train.add_argument(
        "-output", "--output", required=True, metavar="VECTORS", help="the vectors file to write"
    )
    _add_training_flags(train)
    train.add_argument(
        "-binary",
        "--binary",
        type=int,
        choices=(0, 1),
        default=0,
        metavar="0|1",
        help="1 for word2vec's binary format, 0 for text (0)",
    )
    train.add_argument(
        "-save-model", "--save-model", metavar="PATH", help="also save the whole model (.npz)"
    )
    train.add_argument(
        "-checkpoint",
        "--checkpoint",
        metavar="PATH",
        help="save training progress here; if it exists, resume from it (run the same "
        "command again after a crash or a kill); deleted when training completes",
    )
    train.add_argument(
        "-checkpoint-every",
        "--checkpoint-every",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="seconds between checkpoints (600)",
    )
    train.add_argument(
        "-sync-words",
        "--sync-words",
        type=int,
        metavar="N",
        help="under torchrun: words (all processes together) between synchronisations of "
        f"the processes' weights ({PAIR_WORDS} with 2 processes, {RANK_WORDS} per process "
        "with more)",
    )
    train.add_argument(
        "-sync-mode",
        "--sync-mode",
        choices=SYNC_MODES,
        default=SyncPolicy.mode,
        help="under torchrun: processes on one machine train one copy of the weights in "
        "shared memory (shared; across machines: delta), or sum the processes' updates "
        "(delta), the same over changed rows only (rows), or average their weights "
        f"(average) ({SyncPolicy.mode})",
    )

    scores = _command(commands, "evaluate", _evaluate)
    scores.add_argument("vectors", metavar="VECTORS", help="the vectors file")
    scores.add_argument("--analogies", metavar="FILE", help="questions-words.txt format")
    scores.add_argument(
        "--pairs", metavar="FILE", nargs="+", action="extend", help="wordsim353.tsv format"
    )
    scores.add_argument("--json", action="store_true", help="print JSON instead of text")

    versus = _command(commands, "compare", _compare)
    versus.add_argument("corpus", metavar="CORPUS", help="the corpus")
    _add_training_flags(versus)
    versus.add_argument(
        "--repeats", type=int, default=1, metavar="N", help="trainings per library (1)"
    )
    versus.add_argument("--json", metavar="OUT", help="write the results as JSON")
    versus.add_argument(
        "--plot", metavar="OUT.png", help="draw the comparison (needs torchw2v[plot])"
    )
    return parser


def _command(commands: argparse._SubParsersAction, name: str, run: Any) -> Parser:
    """The parser of subcommand ``name`` (described in ``COMMANDS``), which calls ``run``."""
    summary, description = COMMANDS[name]
    parser = commands.add_parser(name, help=summary, description=description, allow_abbrev=False)
    parser.set_defaults(run=run)
    return parser


def _add_training_flags(parser: Parser) -> None:
    """word2vec.c's training flags and defaults (threads: the usable cores)."""
    for flag, kind, default, text in (
        ("cbow", int, 1, "1 for CBOW, 0 for skip-gram"),
        ("size", int, 100, "dimensions of the word vectors"),
        ("window", int, 5, "maximum distance between a word and its context words"),
        ("negative", int, 5, "negative samples per word; 0 for none"),
        ("hs", int, 0, "1 for hierarchical softmax"),
        ("sample", float, 1e-3, "threshold for downsampling frequent words; 0 for none"),
        ("iter", int, 5, "passes over the corpus"),
        ("min-count", int, 5, "discard words that occur fewer times"),
        ("seed", int, 1, "seed of the random draws (gensim's seed)"),
    ):
        switch = flag in ("cbow", "hs")
        parser.add_argument(
            f"-{flag}",
            f"--{flag}",
            type=kind,
            default=default,
            choices=(0, 1) if switch else None,
            metavar="0|1" if switch else {int: "N", float: "F"}[kind],
            help=f"{text} ({default})",
        )
    parser.add_argument(
        "-alpha",
        "--alpha",
        type=float,
        metavar="F",
        help="starting learning rate (0.025 for skip-gram, 0.05 for CBOW)",
    )
    cores = max(1, usable_cores() // local_world_size())  # shared by torchrun's processes
    parser.add_argument(
        "-threads",
        "--threads",
        type=int,
        default=cores,
        metavar="N",
        help=f"worker threads (the usable cores, {cores} here, divided among the processes "
        "torchrun starts on this machine; word2vec.c's default is 12)",
    )
    parser.add_argument(
        "-device",
        "--device",
        metavar="D",
        help="torchw2v's device: cpu, cuda, cuda:N (default: CUDA when available, else CPU)",
    )


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """``Word2Vec`` arguments from word2vec.c's flags."""
    return {
        "sg": 1 - args.cbow,
        "hs": args.hs,
        "negative": args.negative,
        "vector_size": args.size,
        "window": args.window,
        "sample": args.sample,
        "min_count": args.min_count,
        "alpha": args.alpha if args.alpha is not None else (0.05 if args.cbow else 0.025),
        "epochs": args.iter,
        "seed": args.seed,
        "workers": args.threads,
        "device": args.device,
    }


def _train(args: argparse.Namespace) -> None:
    """``torchw2v train``: train, then write the vectors (and the model).

    Started by ``torchrun`` with several processes, they train one model together and rank 0
    alone checks and writes the outputs.
    """
    writer = is_writer()
    if writer:
        _check_writable(args.output, "-output")
    if writer and args.save_model:
        _check_writable(args.save_model, "-save-model")
    if writer and args.checkpoint:
        _check_writable(args.checkpoint, "-checkpoint")
    model = Word2Vec(**_settings(args), **_distributed(args))
    model.build_vocab(corpus_file=args.train)
    model.train(
        corpus_file=args.train,
        total_examples=model.corpus_count,
        total_words=model.corpus_total_words,
        epochs=model.epochs,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
    )
    if not writer:
        return
    save_word2vec_format(model.wv, args.output, binary=bool(args.binary))
    logger.info("wrote %i vectors of %i dimensions to %s", *model.wv.vectors.shape, args.output)
    if args.save_model:
        model.save(args.save_model)
        logger.info("saved the model to %s", args.save_model)


def _distributed(args: argparse.Namespace) -> dict[str, Any]:
    """``Word2Vec``'s ``distributed`` argument when ``torchrun`` started several processes."""
    if not launched_by_torchrun():
        return {}
    return {"distributed": SyncPolicy(args.sync_words, args.sync_mode)}


def _evaluate(args: argparse.Namespace) -> None:
    """``torchw2v evaluate``: print the scores of a vectors file."""
    check_files(args.analogies, args.pairs)
    scores = evaluate(load_vectors(args.vectors), args.analogies, args.pairs)
    print(to_json(scores) if args.json else format_scores(scores))


def _compare(args: argparse.Namespace) -> None:
    """``torchw2v compare``: train both libraries, print the table, write JSON and plot."""
    if args.json:
        _check_writable(args.json, "--json")
    if args.plot:
        _check_writable(args.plot, "--plot")
        figure_class()  # fail now, not after training, when matplotlib is missing
    result = compare(args.corpus, repeats=args.repeats, **_settings(args))
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
    if args.plot:
        plot(result, args.plot)


def _check_writable(path: str, flag: str) -> None:
    """Fail now, before any training, if a local output ``path`` cannot be written."""
    if "://" in path:  # remote: smart-open finds out when it writes
        return
    target = Path(path)
    if not target.parent.is_dir():
        raise OSError(f"cannot write {flag} {path}: folder {target.parent} does not exist")
    existed = target.exists()
    try:
        with target.open("ab"):  # creates a missing file, leaves an existing one as it is
            pass
    except OSError as err:
        raise OSError(f"cannot write {flag} {path}: {err.strerror}") from None
    if not existed:
        target.unlink()


def load_vectors(path: str) -> KeyedVectors:
    """Vectors in word2vec format, text or binary (told apart by the first vector's line).

    Raises
    ------
    ValueError
        The file is not in word2vec format, or is damaged; the message says where and how.
    FileNotFoundError
        The file does not exist.
    """
    return load_word2vec_format(path)
