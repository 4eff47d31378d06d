"""Running a suite: planning its rows, one worker process per measurement, results rewritten on disk after every row."""
