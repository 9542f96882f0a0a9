/** The absolute path of the built chat page (this package's dist/public; written by build.mjs). */
export declare const WEB_ROOT: string;
