/**
 * The one way the page writes a time of day: hours and minutes in the browser's locale
 * ("09:48 PM" in en-US, "21:48" in de-DE), for message headers and the flood demo's texts alike.
 */
const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

export function formatTime(at: number | Date): string {
  return timeOfDay.format(at);
}
