"""Errors raised by every storage backend."""


class StoreError(Exception):
    """Base of storage errors."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or is too busy; the caller should answer 503."""


class SchemaMissing(StoreUnavailable):
    """The database answers but was never prepared: run `flask --app wsgi db init`."""


class SchemaTooNew(StoreUnavailable):
    """The database was migrated by a newer release than this one; it is left as it is."""


class DuplicateKey(StoreError):
    """A unique constraint refused the write: the thing exists already."""


class NotFound(StoreError):
    """A record the caller relied on does not exist."""


class StateChanged(StoreError):
    """A conditional state change found the transaction in another state than expected."""


class InsufficientFunds(StoreError):
    """A conditional debit found the balance too low; the whole unit of work is undone."""


class UnbalancedEntry(StoreError):
    """A ledger entry whose postings do not sum to zero."""
