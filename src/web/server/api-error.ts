/** A request the API cannot answer: a 4xx status and a reason the page shows as is. */
export class ApiError extends Error {
  constructor(readonly status: 400 | 403 | 404 | 405, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}
