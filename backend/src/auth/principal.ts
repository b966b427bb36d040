/** Who a connection acts for, as proven by a verified token. */
export interface Principal {
  user: string;
  /** Rooms the user may see; undefined means every room. */
  rooms: ReadonlySet<string> | undefined;
  authorities: ReadonlySet<string>;
  /** Token expiry, ms since the epoch. */
  expiresAt: number | undefined;
}
