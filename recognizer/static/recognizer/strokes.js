// Replays a stroke drawing in the admin: each "Replay the strokes" button redraws the SVG next to
// it stroke by stroke, in the order drawn (timings come from the SVG; the animation is in admin.css).
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest(".digits-replay");
  const drawing = button && button.parentElement.querySelector("svg.digits-strokes");
  if (!drawing) return;
  drawing.classList.remove("replaying");
  drawing.getBoundingClientRect(); // a layout in between, so that the animation starts again
  drawing.classList.add("replaying");
});
