"""Real recorded music that the machine already has: soundtracks shipped by Debian packages.

The model-quality benchmark and ``eegmusic simulate --music`` want real music (real timbre, real
arrangements, real dynamics), not procedural songs, and they must not download anything at run time.
Debian ships game soundtracks under free licences; :data:`PACKAGED_TRACKS` names the ones this project
uses, where the package puts them, their author and licence. ``make system-deps`` (``.ci/system-deps``)
installs the package when run as root; without it, :func:`packaged_tracks` raises a one-line error
that names the ``apt-get`` command.

=====================  ==================================================================
package                ``singularity-music`` (Debian main), music of *Endgame: Singularity*
author                 Max McCracken
licence                CC BY-SA 3.0 (see ``/usr/share/doc/singularity-music/copyright``)
format                 Ogg Vorbis, 48 kHz stereo, 3.5–5.8 min per track
=====================  ==================================================================

Examples
--------
>>> paths = packaged_tracks(4)          # doctest: +SKIP
>>> [p.name for p in paths]             # doctest: +SKIP
['Aberrations.ogg', 'By-Product.ogg', 'Deprecation.ogg', 'Nebula.ogg']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eegmusic.stream.errors import DataFormatError, missing

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
"""Audio files that ``--music DIR`` picks up (what libsndfile decodes)."""


@dataclass(frozen=True)
class PackagedTrack:
    """One track of a Debian package's soundtrack.

    Attributes
    ----------
    package : str
        Debian package that installs it.
    path : str
        Where the package installs it.
    title, author, licence : str
    duration_s : float
        Length in seconds (as installed).
    """

    package: str
    path: str
    title: str
    author: str
    licence: str
    duration_s: float


_SINGULARITY = "/usr/share/games/singularity/music"
PACKAGED_TRACKS = tuple(
    PackagedTrack("singularity-music", f"{_SINGULARITY}/{title}.ogg", title, "Max McCracken", "CC BY-SA 3.0",
                  seconds)
    for title, seconds in (
        # four tracks of distinct character first: the benchmark takes the first n
        ("Aberrations", 309.6), ("By-Product", 291.6), ("Deprecation", 276.9), ("Nebula", 316.8),
        ("A New Journey", 327.3), ("Advanced Simulacra", 321.6), ("Media Threat", 348.0),
        ("Orbital Elevator", 282.2), ("Enemy Unknown", 260.0), ("Inevitable", 248.5),
        ("Through Space", 233.7), ("Coherence", 228.6), ("Awakening", 208.0),
    )
)
"""The packaged tracks this project knows, in the order the benchmark takes them."""

PACKAGES = tuple(dict.fromkeys(track.package for track in PACKAGED_TRACKS))
"""Debian packages that hold :data:`PACKAGED_TRACKS` (installed by ``.ci/system-deps``)."""


def packaged_tracks(n: int | None = None, *, min_seconds: float = 0.0) -> list[Path]:
    """Paths of installed packaged tracks, in :data:`PACKAGED_TRACKS` order.

    Parameters
    ----------
    n : int, optional
        How many tracks (default: all that are installed).
    min_seconds : float
        Only tracks at least this long.

    Returns
    -------
    list of Path

    Raises
    ------
    DataFormatError
        Fewer than ``n`` tracks installed (the message names the apt-get command).
    """
    found = [Path(track.path) for track in PACKAGED_TRACKS
             if track.duration_s >= min_seconds and Path(track.path).is_file()]
    wanted = len(PACKAGED_TRACKS) if n is None else int(n)
    if len(found) < max(wanted, 1):
        raise DataFormatError(
            f"{len(found)} packaged music track{'s' * (len(found) != 1)} installed, {wanted} needed; install "
            f"them with `apt-get install {' '.join(PACKAGES)}` (as root; `make system-deps` does it) or pass "
            "your own files with --music"
        )
    return found[:wanted]


def describe(path) -> PackagedTrack | None:
    """The packaged track at ``path`` (its title, author and licence), or None for other files."""
    path = str(Path(path))
    return next((track for track in PACKAGED_TRACKS if track.path == path), None)


def music_files(sources) -> list[Path]:
    """Expand ``--music`` arguments (files and folders) into a sorted list of audio files.

    Parameters
    ----------
    sources : sequence of str or Path
        Audio files, or folders whose audio files (:data:`AUDIO_SUFFIXES`, not recursive) are taken
        in name order.

    Returns
    -------
    list of Path

    Raises
    ------
    DataFormatError
        A path that does not exist, or a folder without audio files.
    """
    files: list[Path] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            named = sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
            found = [p for p in named if p.is_file()]
            if not found:
                # an audio name that is no file to read (a dangling or looping link, a pipe) was skipped
                # without a word, and "no audio files" sent the user looking for files the listing shows
                plural = "s" if len(named) > 1 else ""
                skipped = (f" ({len(named)} audio name{plural} such as {named[0].name} "
                           "skipped: not a regular file, or a link to none)" if named else "")
                raise DataFormatError(
                    f"{path}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in this folder{skipped}; pass a "
                    "folder of music or the files themselves"
                )
            files += found
        elif path.is_file():
            files.append(path)
        elif path.exists():   # a pipe, device or socket: it exists, so "no such file" was wrong
            raise DataFormatError(f"{path}: not a regular file (a device, pipe or socket); pass audio files "
                                  "or folders of them to --music")
        else:
            raise DataFormatError(f"{path}: {missing(path, 'no such file or folder')}; check the --music "
                                  "paths")
    seen: dict[Path, Path] = {}
    for path in files:  # one file is one song: twice would be two songs with the same music
        first = seen.setdefault(path.resolve(), path)
        if first is not path:
            raise DataFormatError(f"{path} is {first} again (--music takes each file once, one song each); "
                                  "drop the repeat")
    return files
