@_exported import AnnalsStorage
