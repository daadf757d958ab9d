from .classification_report import (build_classification_report,
                                    dump_classification_report,
                                    format_classification_report,
                                    most_confused_pairs,
                                    plot_confusion_matrix,
                                    write_classification_report)

__all__ = [
    'build_classification_report', 'dump_classification_report',
    'format_classification_report', 'most_confused_pairs',
    'plot_confusion_matrix', 'write_classification_report'
]
