import PDFDocument from 'pdfkit';
import SVGtoPDF from 'svg-to-pdfkit';
import { fontFiles } from './figure-font.js';

/** CSS px -> PDF points (96 px = 72 pt = 1 inch), so a 640 px figure is 6.7 in wide as in a browser. */
export const PT_PER_PX = 72 / 96;

/** Width and height of a vega SVG in px (its root attributes). */
export function svgSize(svg: string): { width: number; height: number } {
  const root = /<svg\b[^>]*>/.exec(svg)?.[0] ?? '';
  const num = (name: string) => Number(new RegExp(`\\s${name}="([\\d.]+)`).exec(root)?.[1] ?? NaN);
  return { width: num('width'), height: num('height') };
}

/**
 * SVG -> one-page vector PDF of the figure's size (times `scale`), through PDFKit and
 * SVG-to-PDFKit: bars and axes are PDF paths, text is real text in the bundled DejaVu Sans
 * (embedded as a subset, so it is searchable and prints the same anywhere). Deterministic:
 * fixed dates, so the same figure gives the same bytes.
 */
export function svgToPdf(svg: string, scale = 1): Promise<Uint8Array> {
  const { width, height } = svgSize(svg);
  const w = width * PT_PER_PX * scale, h = height * PT_PER_PX * scale;
  const epoch = new Date(0);
  const doc = new PDFDocument({ size: [w, h], margin: 0, autoFirstPage: true, info: { Title: 'moescope figure', Creator: 'moescope', Producer: 'moescope (PDFKit)', CreationDate: epoch, ModDate: epoch } as PDFKit.DocumentInfo });
  const fonts = fontFiles();
  doc.registerFont('DejaVu Sans', fonts.regular);
  doc.registerFont('DejaVu Sans-Bold', fonts.bold);
  const chunks: Buffer[] = [];
  doc.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<Uint8Array>((resolve, reject) => {
    doc.on('end', () => resolve(new Uint8Array(Buffer.concat(chunks))));
    doc.on('error', reject);
  });
  const warnings: string[] = [];
  SVGtoPDF(doc, svg, 0, 0, {
    width: w,
    height: h,
    assumePt: false,
    preserveAspectRatio: 'xMinYMin meet',
    fontCallback: (_family: string, bold: boolean) => (bold ? 'DejaVu Sans-Bold' : 'DejaVu Sans'),
    warningCallback: (m: string) => warnings.push(m),
  });
  doc.end();
  return done;
}
