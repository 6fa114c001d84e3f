"""Forecasting the load of every link of a network, online: liquid networks (CfC, LTC) and baselines behind one
interface (`observe` the latest values of all series, `forecast` the next h steps), a walk-forward backtest, and an
adapter that lets the event loop serve a forecaster."""
