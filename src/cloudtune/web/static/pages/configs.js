// Built next: see the web UI issue.
export async function render(main) { main.textContent = 'Not built yet.'; }
export function openTrainDialog() {}
