/**
 * Random parts of made-up people (names, streets, cities) and the small helpers that draw them,
 * shared by the test records (identified-synthea-bundle.ts) and the ingest bench's records.
 */
import { randomInt } from 'node:crypto';

export const pick = <T>(items: readonly T[]): T => items[randomInt(items.length)]!;
export const pad = (n: number, w = 2) => String(n).padStart(w, '0');
export const digits = (n: number) => Array.from({ length: n }, () => randomInt(10)).join('');

export const GIVEN = ['Rosalind', 'Marcus', 'Evelyn', 'Tobias', 'Henrietta', 'Cornelius', 'Philippa', 'Bartholomew'];
export const FAMILY = ['Abernathy', 'Lindqvist', 'Okonkwo', 'Fairweather', 'Castellanos', 'Haverbrook', 'Quennell'];
export const STREETS = ['Kertzmann Gateway', 'Schowalter Mill', 'Runolfsdottir Light', 'Bergstrom Crossroad', 'Wintheiser Camp'];
export const CITIES = ['Marshfield Hills', 'West Tisbury', 'Sturbridge', 'Hopedale', 'Chilmark'];
