// The review page from the keyboard: 0-9 label, Enter confirms, X is not a digit, arrows move.
// A number drawing's page opens with the focus in its digits field, the number read selected:
// typing the digits replaces it (with the caret at the start, they were put before what was read).
"use strict";

const numberField = document.getElementById("number");
if (numberField) {
  numberField.focus(); // as autofocus would, but before the selection, which focusing may move
  numberField.select();
}

document.addEventListener("keydown", (event) => {
  const form = document.getElementById("label-form");
  if (!form || event.ctrlKey || event.metaKey || event.altKey) return;
  // A number drawing's field takes the keys typed into it (Enter submits it as the form does);
  // Esc leaves it, for the keys below.
  if (event.target.matches && event.target.matches("input")) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  const submit = (value) => {
    const button = form.querySelector(`button[value="${value}"]`);
    if (button) {
      event.preventDefault();
      form.requestSubmit(button);
    }
  };
  if (/^[0-9]$/.test(event.key)) submit(event.key);
  else if (event.key === "Enter" && document.activeElement.tagName !== "BUTTON") submit("confirm");
  else if (event.key === "x" || event.key === "X") submit("x");
  else if (event.key === "ArrowRight" && document.getElementById("next")) location = document.getElementById("next").href;
  else if (event.key === "ArrowLeft" && document.getElementById("previous")) location = document.getElementById("previous").href;
});
