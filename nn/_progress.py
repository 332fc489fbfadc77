"""Progress on stderr, shared by ``fit`` (epochs) and the searches (trials): what
``verbose`` means and the bar or lines that show it."""
import sys

from ._validation import check_choice, check_scalar


def _stderr_is_terminal():
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def resolve_verbose(verbose, where):
    """``verbose`` as 0, 1 or 2: "auto" is 1 when stderr is a terminal, else 0, so
    library code and scripts whose output is captured stay silent."""
    if isinstance(verbose, str):
        check_choice("verbose", verbose, ("auto",), where=where)
        verbose = 1 if _stderr_is_terminal() else 0
    return check_scalar("verbose", verbose, where=where, low=0, high=2, integer=True)


class Progress:
    """One update per finished unit (an epoch, a trial): a tqdm bar for verbose 1, one
    line each for verbose 2 (or 1 without tqdm installed), nothing for verbose 0."""

    def __init__(self, verbose, total, unit, initial=0, desc=None):
        self.verbose, self.bar = verbose, None
        if verbose == 1:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self.verbose = 2
            else:
                self.bar = tqdm(total=total, initial=initial, unit=unit, desc=desc,
                                file=sys.stderr, dynamic_ncols=True, leave=True)

    def update(self, line, postfix=None):
        """One more unit done: ``postfix`` (a dict, if any) shown on the bar, or
        ``line`` printed."""
        if self.bar is not None:
            if postfix is not None:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)
        elif self.verbose:
            print(line, file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
