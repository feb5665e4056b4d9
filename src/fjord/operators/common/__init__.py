"""What every fjord operator shares: conditions, error classes, results, Events, metrics, logs
and the in-process kopf runner behind ``fjord operator run``. Small and stable on purpose."""
