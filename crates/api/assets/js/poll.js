// Polling that never overlaps itself and pauses while the tab is hidden.

/**
 * Calls `task` now (unless immediate is false) and then every `interval` ms after each call
 * ends. Returns a function that stops it.
 */
export function poll(task, interval, { immediate = true } = {}) {
  let stopped = false;
  let timer = null;
  let running = false;

  const run = async () => {
    timer = null;
    if (stopped) return;
    if (document.hidden) return; // resumed by visibilitychange
    running = true;
    try {
      await task();
    } catch (error) {
      console.warn('poll', error);
    } finally {
      running = false;
    }
    if (!stopped && !document.hidden) timer = setTimeout(run, interval);
  };
  const onVisibility = () => {
    if (!document.hidden && !stopped && !running && timer === null) run();
  };
  document.addEventListener('visibilitychange', onVisibility);
  if (immediate) run();
  else timer = setTimeout(run, interval);

  return () => {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisibility);
  };
}
