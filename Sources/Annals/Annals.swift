/// `import Annals`: the event-sourcing layer over the `AnnalsStorage` engine (re-exported, so
/// `EventStore` and friends come with it). It knows nothing of bytes on disk: typed events and
/// their schema evolution (`Events/`), aggregates as deciders with repositories
/// (`Aggregates/`), subscriptions (`Subscriptions/`) and projections (`Projections/`).
@_exported import AnnalsStorage
