import time

IMPORTED_AT = time.time()  # where no /proc tells a process's start time, the start-up is counted from here
